"""The ``stronglens`` command line: generate or convert sweeps, build, check, query, list builds, finder
metrics, docs."""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from stronglens import paths
from stronglens.dbt_docs import DEFAULT_PORT

if TYPE_CHECKING:
    from stronglens.synth import SynthReport

FORMATS = ("table", "csv", "json")
#: Exit status when stdout's reader closed the pipe: 128 + SIGPIPE, what a shell reports for cat.
SIGPIPE_EXIT = 128 + signal.SIGPIPE


def _git_commit(root: Path) -> str:
    """The checkout's commit (with ``-dirty`` for uncommitted changes), recorded in ``build_runs``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _build_environment(sweeps: str | None) -> dict[str, str]:
    """Environment for dbt: absolute warehouse paths, the sweeps glob and the git commit."""
    root = paths.project_root()
    home = paths.warehouse_home()
    home.mkdir(parents=True, exist_ok=True)
    return {
        **paths.dbt_environment(sweeps),
        "STRONGLENS_GIT_COMMIT": _git_commit(root),
        # dbt artifacts (manifest, run results, logs) belong to the warehouse they describe, and
        # builds of different warehouses never race on one target/ folder.
        "DBT_TARGET_PATH": str(home / "target"),
        "DBT_LOG_PATH": str(home / "logs"),
    }


def _die_with_parent(parent_pid: int) -> None:
    """In the dbt child before exec: ask Linux to SIGKILL it when its parent dies, even by SIGKILL
    (which no handler can forward), so a killed build never leaves dbt holding the catalog."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def run_dbt(command: str, dbt_args: Sequence[str], sweeps: str | None = None) -> int:
    """Run a dbt command against this project and profile in a child process; return its exit code.

    A child process, not dbt's in-process runner: dbt keeps global state and its DuckDB
    connection for the life of the process.  The child is tied to this process: SIGTERM, SIGINT
    and SIGHUP are forwarded to it (dbt then stops and its DuckDB/DuckLake transactions roll back),
    and on Linux it is killed if this process dies by SIGKILL.  A later build recovers: the catalog
    commits atomically, so an interrupted build leaves only its unreferenced Parquet files.
    """
    from stronglens.extensions import install_extensions
    from stronglens.varschema import VAR_NAMES_ENV, parse_cli_vars, resolve_vars
    from stronglens.warehouse import prepare_catalog

    resolved = resolve_vars(parse_cli_vars(dbt_args))  # before any work: one error lists every problem
    install_extensions()
    prepare_catalog()
    env = dict(os.environ, **_build_environment(sweeps))
    env[VAR_NAMES_ENV] = json.dumps(sorted(resolved))
    root = paths.project_root()
    dbt = Path(sys.executable).with_name("dbt")
    args = [str(dbt), command, "--project-dir", str(root), "--profiles-dir", str(root), *dbt_args]
    parent = os.getpid()
    preexec = (lambda: _die_with_parent(parent)) if sys.platform.startswith("linux") else None
    child = subprocess.Popen(args, env=env, preexec_fn=preexec)
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in forwarded} if in_main_thread else {}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:  # an exception in this process: never leave dbt behind
            child.kill()
            child.wait()


def _synth_summary(report: SynthReport) -> str:
    return (
        f"{report.total_rows:,} rows in {len(report.files)} files, {report.seconds:.1f} s "
        f"({report.rows_per_second:,.0f} rows/s); footprint {report.footprint_area_deg2:,.0f} deg^2; "
        f"{report.counterparts_written:,} lens counterparts for {report.candidates_total:,} candidates"
    )


def cmd_synth(args: argparse.Namespace) -> int:
    from stronglens.synth import generate_sky

    options = {
        "density": args.density,
        "seed": args.seed,
        "tiles": args.tiles,
        "mag_limit": args.mag_limit,
        "candidates_csv": args.candidates,
    }
    out = args.out or str(paths.default_sweeps_dir())
    report = generate_sky(out, **{k: v for k, v in options.items() if v is not None})
    print(_synth_summary(report))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from stronglens.convert import convert_sweeps

    inputs = [f for pattern in args.files for f in (sorted(glob.glob(pattern)) or [pattern])]
    results = convert_sweeps(inputs, args.out, chunk_rows=args.chunk_rows, overwrite=args.overwrite)
    converted = sum(r.status == "converted" for r in results)
    print(
        f"{converted} converted, {len(results) - converted} already complete, "
        f"{sum(r.rows for r in results):,} rows -> {args.out}"
    )
    return 0


def cmd_build(args: argparse.Namespace, dbt_args: list[str]) -> int:
    return run_dbt("build", dbt_args, sweeps=args.sweeps)


def cmd_run(args: argparse.Namespace) -> int:
    """The main job on the embedded default: generate the synthetic sky (once), build, check.

    The sky is complete only once its marker file exists, so an interrupted generation is simply
    redone (deterministically) by the next run.  The marker records a fingerprint of the sky model,
    so a sky made by an older model (after an upgrade) is made again instead of silently reused.
    """
    from stronglens.summary import build_summary, time_report

    stages: list[tuple[str, float]] = []
    sweeps_dir = paths.default_sweeps_dir()
    marker = sweeps_dir / ".complete"
    fingerprint = _sky_fingerprint()
    stale = marker.exists() and fingerprint not in marker.read_text()
    if args.sweeps is None and (stale or not marker.exists()):
        from stronglens.synth import generate_sky

        if stale:
            print(f"The embedded sky in {sweeps_dir} was made by another sky model; making it again.")
            marker.unlink()
            for old in sweeps_dir.glob("*.parquet"):
                old.unlink()
        print(f"Generating the embedded DR10-like sky in {sweeps_dir} ...")
        started = time.perf_counter()
        print(_synth_summary(generate_sky(str(sweeps_dir))))
        stages.append(("embedded sky", time.perf_counter() - started))
        marker.write_text(f"generated by `stronglens run` with the synth defaults\nmodel {fingerprint}\n")
    started = time.perf_counter()
    status = run_dbt("build", [], sweeps=args.sweeps)
    stages.append(("dbt build", time.perf_counter() - started))
    run_results = paths.warehouse_home() / "target" / "run_results.json"
    if status != 0:
        print(time_report(stages, run_results))
        return status
    from stronglens.quality import run_check

    started = time.perf_counter()
    report = run_check(None)
    stages.append(("quality check", time.perf_counter() - started))
    print(report.format())
    if report.success:
        print(build_summary(report.build_id))
    print(time_report(stages, run_results))
    return 0 if report.success else 1


def _sky_fingerprint() -> str:
    """sha256 of everything that shapes the default embedded sky: the physical model, the footprint,
    the generator defaults (their reprs list every field) and the candidate list's content (not its
    path, so a moved checkout keeps its sky)."""
    import hashlib
    import inspect
    from pathlib import Path

    from stronglens.synth import generate_sky
    from stronglens.synth.footprint import Footprint
    from stronglens.synth.model import SkyModel

    defaults = {k: p.default for k, p in inspect.signature(generate_sky).parameters.items() if k != "out"}
    candidates = Path(str(defaults.pop("candidates_csv")))
    digest = hashlib.sha256(repr((SkyModel(), Footprint(), sorted(defaults.items()))).encode())
    digest.update(candidates.read_bytes())
    return digest.hexdigest()[:16]


def _print_frame(frame, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        print(json.dumps(json.loads(frame.to_json(orient="records", date_format="iso")), indent=2))
    else:
        print(frame.to_string(index=False) if len(frame) else "(no rows)")


def cmd_sql(args: argparse.Namespace) -> int:
    from stronglens.warehouse import connect_lake, expose_checks, resolve_snapshot

    con = connect_lake(resolve_snapshot(args.build))
    try:
        expose_checks(con)
        frame = con.execute(args.query).df()
    finally:
        con.close()
    _print_frame(frame, args.format)
    return 0


def cmd_builds(args: argparse.Namespace) -> int:
    import pandas as pd

    from stronglens.warehouse import connect_lake, list_builds

    con = connect_lake()
    try:
        builds = list_builds(con)
    finally:
        con.close()
    if not builds:
        print("No builds recorded yet: run `stronglens build`.")
        return 0
    _print_frame(pd.DataFrame([b.__dict__ for b in builds]), args.format)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Run the quality suites on a build; exit 1 when it fails (it is then never served as current)."""
    from stronglens.quality import run_check

    report = run_check(args.build, accept_custom_vars=args.accept_custom_vars)
    print(report.format())
    return 0 if report.success else 1


def cmd_gc(args: argparse.Namespace) -> int:
    """Keep the newest --keep builds (and the served one); remove cutouts, snapshots and reports
    no retained build needs."""
    from stronglens.retention import collect

    print(collect(args.keep, dry_run=args.dry_run).format())
    return 0


def cmd_finder(args: argparse.Namespace) -> int:
    """Print a finder run's headline metrics (default: the primary run of the current build)."""
    from stronglens.training.summary import headline
    from stronglens.warehouse import connect_lake, resolve_snapshot

    con = connect_lake(resolve_snapshot(args.build))
    try:
        print(headline(con, args.run, args.split))
    finally:
        con.close()
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Generate the dbt docs site of this warehouse, and serve it on 127.0.0.1 with --serve."""
    from stronglens.dbt_docs import generate_docs, serve_docs

    os.environ.update(_build_environment(None))
    target = generate_docs()
    print(f"dbt docs written to {target} (open static_index.html from disk, or use --serve)")
    return serve_docs(target, args.port) if args.serve else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stronglens",
        description="Strong-lens training-set warehouse over DESI Legacy Surveys DR10 (dbt + DuckDB).",
        epilog=f"Warehouse folder: ${paths.HOME_ENV} (default ./warehouse). Sweeps: ${paths.SWEEPS_ENV}.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "synth",
        help="write a synthetic DR10-like sky as sweep Parquet files",
        description="Write a deterministic synthetic DR10-like sky, one sweep Parquet file "
        "per 5x5 deg tile, with a counterpart for every lens candidate in the footprint.",
    )
    p.add_argument("--out", help="output folder (default: $STRONGLENS_HOME/sweeps)")
    p.add_argument("--density", type=float, help="objects per deg^2 down to --mag-limit")
    p.add_argument("--mag-limit", type=float, help="faintest z-band AB magnitude generated")
    p.add_argument("--seed", type=int, help="random seed (same seed, same files)")
    p.add_argument(
        "--tiles", nargs="+", help="tile names (sweep-000m010-005m005) or RAMIN,RAMAX,DECMIN,DECMAX"
    )
    p.add_argument(
        "--candidates",
        action="append",
        help="lens-candidate CSV to place counterparts for (repeat for several lists: the seed plus "
        "your extra_candidates lists; columns ra/dec in any case, or ra_deg/dec_deg; default: the seed)",
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "convert-sweeps",
        help="convert real DR10 sweep FITS files to Parquet",
        description="Stream real Legacy Surveys sweep FITS files into Parquet (lower-case "
        "names, native dtypes, all columns). Re-running skips complete outputs.",
    )
    p.add_argument("files", nargs="+", help="sweep FITS files or globs")
    p.add_argument("--out", required=True, help="output folder or s3:// prefix")
    p.add_argument("--chunk-rows", type=int, default=500_000, help="rows read per chunk (default 500000)")
    p.add_argument("--overwrite", action="store_true", help="convert again even if the output is complete")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "build",
        help="run `dbt build` on the warehouse (extra arguments go to dbt)",
        description="Run `dbt build` with this project's profile and environment. Any "
        "argument not listed here is passed to dbt, e.g. --select, --vars, --full-refresh.",
    )
    p.add_argument("--sweeps", help="sweep Parquet glob, local or s3:// (default: $STRONGLENS_SWEEPS)")
    p.set_defaults(func=cmd_build, passthrough=True)

    p = sub.add_parser(
        "run",
        help="generate the embedded sky if needed, build the warehouse, check it",
        description="The main job: synthesise the default sky (once), run dbt build, then the quality "
        "suites (stronglens check); exits non-zero if any step fails.",
    )
    p.add_argument("--sweeps", help="build from these sweeps instead of the embedded sky")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "sql",
        help="query the warehouse with SQL",
        description="Run a SQL query against the warehouse marts (DuckDB dialect).",
    )
    p.add_argument("query", help='e.g. "select tier, count(*) from positives group by tier"')
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    p.add_argument(
        "--build",
        type=int,
        help="read the tables exactly as build N wrote them "
        "(default: the newest build whose `stronglens check` passed)",
    )
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser(
        "check",
        help="run the quality suites on a build (exit 1 on failure)",
        description="Run the Great Expectations suites of expectations/ against a build, "
        "print a per-suite summary, write the Data Docs to $STRONGLENS_HOME/reports/ and "
        "record the outcome in build_checks. Only a passed build is served as current.",
    )
    p.add_argument("--build", type=int, help="build to check (default: the newest build)")
    p.add_argument(
        "--accept-custom-vars",
        action="store_true",
        help="serve a build made with non-default target vars if its suites pass (recorded in "
        "build_checks); bands are always judged with the project defaults",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "gc",
        help="remove cutouts, lake snapshots and reports that no retained build needs",
        description="Keep the newest --keep builds and always the served (current) one; remove the "
        "cutout files no retained build's `cutouts` table references, expire every other DuckLake "
        "snapshot and delete its Parquet files, and drop the cutout reports of other builds. "
        "Dropped builds stay listed in `stronglens builds` but can no longer be read.",
    )
    p.add_argument("--keep", type=int, default=3, help="newest builds to keep (default 3; at least 1)")
    p.add_argument("--dry-run", action="store_true", help="report what would be removed, remove nothing")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser(
        "finder",
        help="print a lens-finder run's headline metrics",
        description="Print what a finder run trained (architecture, parameters, epochs, speed, "
        "checkpoint) and its headline metrics on a split: AUC with its bootstrap CI, recall at each "
        "fixed FPR with Wilson CIs and the negatives pinning the threshold (or why not measurable), "
        "TPR0/TPR10 per tier, and the FPR of each N2 confuser category. Everything is in the "
        "finder_metrics table (stronglens sql).",
    )
    p.add_argument("--build", type=int, help="build to read (default: the current build)")
    p.add_argument("--run", help="finder_runs.run_id (default: the primary run)")
    p.add_argument("--split", default="test", help="split to report (default test)")
    p.set_defaults(func=cmd_finder)

    p = sub.add_parser(
        "docs",
        help="generate (and serve) the dbt docs site",
        description="Run `dbt docs generate` into $STRONGLENS_HOME/docs (index.html and "
        "the self-contained static_index.html); --serve serves it on 127.0.0.1.",
    )
    p.add_argument("--serve", action="store_true", help="serve the site after generating it")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port for --serve (default {DEFAULT_PORT})"
    )
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser(
        "builds",
        help="list the builds in the warehouse",
        description="List every recorded build with its DuckLake snapshot.",
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    p.set_defaults(func=cmd_builds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "passthrough", False):
            return args.func(args, extra)
        return args.func(args)
    except BrokenPipeError:
        # the reader of stdout went away (`stronglens sql ... | head`): stop quietly as cat does, with
        # the shell's SIGPIPE status; stdout goes to devnull so the exit flush does not raise again
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT
    except (FileNotFoundError, ValueError, RuntimeError, duckdb.Error) as exc:
        print(f"stronglens {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
