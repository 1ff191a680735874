"""What `make run` tells a newcomer at the end: the build, its marts, its reports, what to try next."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from stronglens import paths
from stronglens.sqltext import identifier
from stronglens.warehouse import connect_lake, list_builds

#: Commands printed at the end of a run, each a first step into the warehouse.
NEXT_COMMANDS = (
    ("stronglens", "sql", "select tier, count(*) as n from positives group by tier order by tier"),
    (
        "stronglens",
        "sql",
        "select split, category, n_negatives, share from n2_summary order by split, category",
    ),
    ("stronglens", "builds"),
)


def mart_names(root: Path | None = None) -> list[str]:
    """The marts: every model file under ``models/marts/`` (SQL or Python), by name."""
    marts = (root or paths.project_root()) / "models" / "marts"
    return sorted({f.stem for f in marts.rglob("*") if f.suffix in (".sql", ".py")})


def link_cutout_reports(build_id: int, invocation_id: str) -> Path | None:
    """``reports/cutouts/build-<id>`` -> the invocation's folder (the models write it under dbt's
    invocation id, which is known before the build id is); None if the build wrote no PNGs."""
    cutouts = paths.warehouse_home() / "reports" / "cutouts"
    source = cutouts / invocation_id
    if not source.is_dir():
        return None
    link = cutouts / f"build-{build_id}"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(invocation_id, target_is_directory=True)
    return link


def build_summary(build_id: int) -> str:
    """A few lines: build id, rows per mart, where the reports are, three commands to try next."""
    con = connect_lake()
    try:
        builds = {b.build_id: b for b in list_builds(con)}
        present = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_catalog = 'lake'"
            ).fetchall()
        }
        counts = {
            name: con.execute(f"select count(*) from {identifier(name)}").fetchone()[0]
            for name in mart_names()
            if name in present and name != "build_runs"
        }
        (invocation,) = con.execute(
            "select invocation_id from build_runs where build_id = ?", [build_id]
        ).fetchone()
    finally:
        con.close()
    home = paths.warehouse_home()
    lines = [
        "",
        f"Build {build_id} (DuckLake snapshot {builds[build_id].snapshot_id}) is the current build of {home}",
        "Rows per mart: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()),
        f"Quality reports (Data Docs): {home / 'reports' / 'index.html'}",
    ]
    pngs = link_cutout_reports(build_id, invocation)
    if pngs is not None:
        lines.append(f"Cutout mosaic and shortcut audit PNGs: {pngs}/")
    lines.append("Try next:")
    lines += [f"  {shlex.join(cmd)}" for cmd in NEXT_COMMANDS]
    return "\n".join(lines)


def time_report(stages: Sequence[tuple[str, float]], run_results: Path, top: int = 6) -> str:
    """Where the time of a run went: each stage with its share, then the slowest dbt nodes of the
    build (dbt's ``run_results.json``), so a slow run names the model to look at."""
    total = sum(seconds for _, seconds in stages) or 1e-9
    lines = [f"Where the time went ({total:.0f} s in all):"]
    lines += [f"  {name:<24} {seconds:8.1f} s {100 * seconds / total:4.0f}%" for name, seconds in stages]
    slowest = slowest_nodes(run_results, top)
    if slowest:
        lines.append("  slowest dbt nodes: " + ", ".join(f"{name} {sec:.1f} s" for name, sec in slowest))
    return "\n".join(lines)


def slowest_nodes(run_results: Path, top: int) -> list[tuple[str, float]]:
    """The ``top`` dbt nodes of ``run_results.json`` by execution time (none if it is unreadable)."""
    try:
        results = json.loads(run_results.read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    timed = [(str(r["unique_id"]).rsplit(".", 1)[-1], float(r.get("execution_time") or 0.0)) for r in results]
    return sorted(timed, key=lambda item: -item[1])[:top]
