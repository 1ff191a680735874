"""Catalog benchmark: the dbt DAG against a bare DuckDB scan (floor) and two peers.

    python -m bench.catalog [--sizes 5 10 20 40] [--workdir DIR] [--repeats N] [--spark]

Generates a synthetic sky at real DR10 density (140,000 objects/deg^2 to z = 24.5) over enough
5x5 deg tiles for each size (millions of sweep rows), then measures, each in a fresh subprocess so
that peak memory (max RSS) is the run's own:
  (a) floor:     a bare DuckDB scan of the same Parquet columns with the type filter,
  (b) dag cold:  `dbt run --select +negatives` in a fresh warehouse (sweep validation decodes every
                 file: the first build over new sweeps),
      dag:       the same again (median of --repeats): unchanged sweep files are not re-validated
                 (validation cache keyed by file fingerprint) -- every rebuild after the first,
      dag +1 file: one more sweep file added to the glob: only that file is validated,
  (c) peer:      the same steps vectorised in pandas + healpy + astropy (sha256 once per pixel),
      seed peer: as the seed's Spark scripts did them, per-row Python UDFs: healpy.ang2pix and
                 hashlib.sha256 called once per galaxy,
  (d) --spark:   the DAG on Spark local[2] (dbt-spark) over the smallest size, as rows/s per core
                 beside DuckDB's,
and prints seconds (median), rows/s, peak memory (first build and rebuild apart: the first one
hashes every key for the duplicate check), the ratios, a scaling line (seconds and GB per size), the
DAG's fixed cost and cost per row against the floor's with the size from which the DAG stays within
3x the floor, and the extrapolation to full DR10 (2.83e9 rows) on one 2-core and one 64-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

#: Real DR10 density: 2.83e9 sources over ~20,000 deg^2, to about z = 24.5.
DR10_DENSITY = 140_000.0
DR10_MAG_LIMIT = 24.5
#: The columns the catalog DAG reads from the sweeps (staging selects these and derives the rest).
DAG_COLUMNS = (
    "release, brickid, objid, brickname, type, ra, dec, ebv, "
    + ", ".join(f"flux_{b}, flux_ivar_{b}, mw_transmission_{b}" for b in ("g", "r", "z", "w1", "w2"))
    + ", "
    + ", ".join(f"nobs_{b}, psfsize_{b}, psfdepth_{b}, galdepth_{b}, fracflux_{b}" for b in "grz")
    + ", shape_r, shape_e1, shape_e2, sersic, maskbits, fitbits"
)

FLOOR_SCRIPT = """
import duckdb, sys
con = duckdb.connect()
glob, cols = sys.argv[1], sys.argv[2]
con.execute(f"select count(*), {', '.join('max(' + c.strip() + ')' for c in cols.split(','))} "
            f"from read_parquet('{glob}') where type in ('SER', 'DEV', 'REX')").fetchall()
"""

PEER_SCRIPT = r"""
import hashlib, json, sys
import healpy as hp, numpy as np, pandas as pd, pyarrow.dataset as ds
from astropy import units as u
from astropy.coordinates import SkyCoord, match_coordinates_sky, search_around_sky

files, cands_csv = json.loads(sys.argv[1]), sys.argv[2]
cols = [c.strip() for c in sys.argv[3].split(",")]
per_row = sys.argv[4] == "per_row"  # the seed's Spark scripts: Python UDFs called once per row
df = ds.dataset(files, format="parquet").to_table(columns=cols).to_pandas()
cands = pd.read_csv(cands_csv)
cand_sky = SkyCoord(cands.ra_deg.values * u.deg, cands.dec_deg.values * u.deg)
# positives: nearest DR10 source within 1"
sky = SkyCoord(df.ra.values * u.deg, df.dec.values * u.deg)
idx, sep, _ = match_coordinates_sky(cand_sky, sky)
matched = sep.arcsec < 1.0
pos = df.iloc[idx[matched]].copy()
# pool cuts
mag_z = 22.5 - 2.5 * np.log10((df.flux_z / df.mw_transmission_z).clip(lower=1e-12))
pool = df[df.type.isin(["SER", "DEV", "REX"]) & (mag_z < 20) & (df.nobs_g >= 3) & (df.nobs_r >= 3)
          & (df.nobs_z >= 3) & ((df.maskbits & ((1 << 1) | (1 << 11) | (1 << 12) | (1 << 13))) == 0)].copy()
pool_sky = SkyCoord(pool.ra.values * u.deg, pool.dec.values * u.deg)
# exclusion: 11" around every candidate
i_pool, _, _, _ = search_around_sky(pool_sky, cand_sky, 11 * u.arcsec)
pool = pool.drop(pool.index[np.unique(i_pool)])
pool_sky = SkyCoord(pool.ra.values * u.deg, pool.dec.values * u.deg)
# N2 flags (merger via a self-match within 3")
fr = pool.flux_r
e = np.hypot(pool.shape_e1, pool.shape_e2)
i1, i2, _, _ = search_around_sky(pool_sky, pool_sky, 3 * u.arcsec)
keep = i1 != i2
fz = pool.flux_z.values
ratio = np.minimum(fz[i1[keep]], fz[i2[keep]]) / np.maximum(fz[i1[keep]], fz[i2[keep]])
merger = np.zeros(len(pool), bool)
merger[i1[keep][ratio >= 0.33]] = True
pool["is_n2"] = (((pool.type == "DEV") | ((pool.type == "SER") & (pool.sersic >= 4))) & (fr >= 5)) | (
    (e >= 0.55) & (pool.shape_r >= 0.6)) | ((pool.shape_r >= 2) & (fr >= 3)) | merger
# splits: HEALPix nside 64 and sha256 of '<pixel>_42'
def split(p):
    h = int.from_bytes(hashlib.sha256(f"{p}_42".encode()).digest()[:4], "big") / 2**32
    return "test" if h < 0.15 else "train" if h < 0.85 else "val"
def splits(ra, dec):
    theta, phi = np.radians(90 - dec), np.radians(ra)
    if per_row:  # one healpy call and one hashlib call per galaxy, as a row UDF does
        return [split(hp.ang2pix(64, t, f, nest=True)) for t, f in zip(theta, phi)]
    pix = hp.ang2pix(64, theta, phi, nest=True)
    uniq, inverse = np.unique(pix, return_inverse=True)
    return np.array([split(p) for p in uniq])[inverse]
pool["split"] = splits(pool.ra.values, pool.dec.values)
pos["split"] = splits(pos.ra.values, pos.dec.values)
pool["nobs_bin"] = pd.cut(pool.nobs_z, [3, 5, 8, 1000], right=False).astype(str)
pool["psf_bin"] = pd.cut(pool.psfsize_z, [0, 1.1, 1.3, 1.5, 99], right=False).astype(str)
pos["nobs_bin"] = pd.cut(pos.nobs_z, [3, 5, 8, 1000], right=False).astype(str)
pos["psf_bin"] = pd.cut(pos.psfsize_z, [0, 1.1, 1.3, 1.5, 99], right=False).astype(str)
keys = ["split", "type", "nobs_bin", "psf_bin"]
wanted = pos.groupby(keys).size() * 100
parts = []
for key, group in pool.groupby(keys):
    n = int(wanted.get(key, 0))
    if n:
        parts.append(group.sample(min(n, len(group)), random_state=42))
neg = pd.concat(parts) if parts else pool.iloc[:0]
print(json.dumps({"positives": int(matched.sum()), "negatives": len(neg)}))
"""


def _measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` in a child process; return (seconds, peak RSS in GB of the child, stdout)."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2\n"
        "print(json.dumps({'rc': p.returncode, 's': dt, 'rss': rss, 'out': p.stdout[-2000:],"
        " 'err': p.stderr[-4000:]}))\n"
    )
    res = json.loads(
        subprocess.run(
            [PYTHON, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, check=True
        ).stdout
    )
    if res["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{res['out']}\n{res['err']}")
    return res["s"], res["rss"], res["out"]


def _tiles_with_most_candidates(n_tiles: int) -> list[str]:
    """The footprint tiles holding the most lens candidates, so every size has positives."""
    import numpy as np
    import pandas as pd

    from stronglens.schema import sweep_filename

    cands = pd.read_csv(ROOT / "seeds" / "lenscat_desi_candidates.csv")
    cands = cands[(cands.dec_deg < 30) & (cands.dec_deg > -60)]
    ra0 = (np.floor(cands.ra_deg / 5) * 5).astype(int)
    dec0 = (np.floor(cands.dec_deg / 5) * 5).astype(int)
    counts = pd.Series(list(zip(ra0, dec0, strict=True))).value_counts()
    return [sweep_filename(r, d, r + 5, d + 5).removesuffix(".parquet") for r, d in counts.index[:n_tiles]]


#: Full DR10: sweep rows, and the extrapolation targets (cores per machine).
DR10_ROWS = 2.83e9
EXTRAPOLATE_CORES = (2, 64)


def _subset(work: Path, name: str, files: list[Path]) -> str:
    """A folder of symlinks to ``files``; return its glob."""
    subset = work / name
    subset.mkdir(exist_ok=True)
    for f in files:
        link = subset / f.name
        if not link.exists():
            link.symlink_to(f)
    return str(subset / "*.parquet")


def _extrapolation(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (intercept s, slope s/row) of DAG seconds against rows on this machine."""
    import numpy as np

    rows = np.array([p[0] for p in points], float)
    secs = np.array([p[1] for p in points], float)
    if len(points) == 1:
        return 0.0, float(secs[0] / rows[0])
    slope, intercept = np.polyfit(rows, secs, 1)
    return float(intercept), float(slope)


def _split_line(table: list[dict[str, float]], intercept: float, slope: float) -> str:
    """Fixed cost and cost per row of the DAG and of the floor (least squares over the sizes), and
    the size from which the DAG stays within 3x the floor.

    Why: dbt pays a fixed cost per build that a bare scan does not (process start-up and parsing,
    one DuckLake commit per model), so the ratio at one size mixes two things; what decides the
    cost of full DR10 is the ratio per row."""
    floor_intercept, floor_slope = _extrapolation([(int(r["rows"]), r["floor"]) for r in table])
    per_row = slope / floor_slope if floor_slope > 0 else float("inf")
    line = (
        f"fixed + per row (least squares over {len(table)} sizes): DAG {intercept:.1f} s + "
        f"{slope * 1e6:.3f} s/M rows, floor {floor_intercept:.1f} s + {floor_slope * 1e6:.3f} s/M rows; "
        f"per row the DAG costs {per_row:.2f}x the floor"
    )
    if per_row < 3:
        crossover = (intercept - 3 * floor_intercept) / (3 * floor_slope - slope)
        line += f"; DAG <= 3x floor from {max(crossover, 0) / 1e6:.0f}M rows on"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=float, nargs="+", default=[5, 10, 20, 40], help="millions of sweep rows"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    # 25: the 20M size lands on whole 5x5 deg tiles (20.4M rows) and is the one the DAG is judged
    # at, so both peers run there; above it the pandas peer needs > 12 GB of memory.
    parser.add_argument("--peer-max-rows", type=float, default=25, help="skip the peer above this (millions)")
    parser.add_argument(
        "--seed-peer-max-rows",
        type=float,
        default=25,
        help="skip the per-row seed peer above this (millions)",
    )
    parser.add_argument(
        "--spark", action="store_true", help="also time the DAG on Spark local[2] (smallest size)"
    )
    parser.add_argument("--workdir", help="keep generated data here (default: a temp dir)")
    args = parser.parse_args(argv)

    from stronglens.synth import generate_sky

    work = Path(args.workdir or tempfile.mkdtemp(prefix="stronglens-bench-"))
    sky_dir = work / "sky"
    per_tile = DR10_DENSITY * 25 * 0.9  # rows in a full footprint tile, roughly
    # one tile more than the largest size needs: the "+1 file" incremental step adds it
    n_tiles = max(1, int(-(-max(args.sizes) * 1e6 // per_tile)) + 2)
    tiles = _tiles_with_most_candidates(n_tiles)
    t0 = time.perf_counter()
    report = generate_sky(str(sky_dir), density=DR10_DENSITY, mag_limit=DR10_MAG_LIMIT, tiles=tiles)
    print(
        f"generated {report.total_rows:,} rows in {len(tiles)} tiles in "
        f"{time.perf_counter() - t0:.1f} s ({report.total_rows / (time.perf_counter() - t0):,.0f} rows/s)"
    )
    files = sorted(sky_dir.glob("*.parquet"))
    import pyarrow.parquet as pq

    rows_per_file = [pq.ParquetFile(f).metadata.num_rows for f in files]
    dbt = str(Path(PYTHON).parent / "dbt")
    project = ["--project-dir", str(ROOT), "--profiles-dir", str(ROOT)]
    dag_cmd = [dbt, "run", "--select", "+negatives", "--exclude", "resource_type:seed", *project]
    cores = os.cpu_count() or 1

    def peer_cmd(chosen: list[Path], mode: str) -> list[str]:
        return [
            PYTHON,
            "-c",
            PEER_SCRIPT,
            json.dumps([str(f) for f in chosen]),
            str(ROOT / "seeds" / "lenscat_desi_candidates.csv"),
            DAG_COLUMNS,
            mode,
        ]

    print(f"\n{'rows':>12} {'step':>12} {'seconds':>9} {'rows/s':>12} {'peak GB':>8}   ratio")
    table: list[dict[str, float]] = []
    spark_line = ""
    for size in args.sizes:
        chosen, total = [], 0
        for f, n in zip(files, rows_per_file, strict=True):
            if total >= size * 1e6:
                break
            chosen.append(f)
            total += n
        extra = files[len(chosen)] if len(chosen) < len(files) else None
        glob = _subset(work, f"subset-{size:g}M", chosen)
        env = dict(os.environ, STRONGLENS_HOME=str(work / f"home-{size:g}M"), STRONGLENS_SWEEPS=glob)
        Path(env["STRONGLENS_HOME"]).mkdir(exist_ok=True)
        # seeds (candidates, required columns) are inputs, loaded once and not timed
        subprocess.run([dbt, "seed", *project], env=env, check=True, capture_output=True)
        results: dict[str, float] = {"rows": total}

        def show(step: str, seconds: float, peak: float, ratio: str = "", rows: int = total) -> None:
            print(f"{rows:>12,} {step:>12} {seconds:>9.2f} {rows / seconds:>12,.0f} {peak:>8.2f}   {ratio}")

        runs = [_measured([PYTHON, "-c", FLOOR_SCRIPT, glob, DAG_COLUMNS], env) for _ in range(args.repeats)]
        results["floor"] = statistics.median(r[0] for r in runs)
        results["floor_gb"] = max(r[1] for r in runs)
        show("floor", results["floor"], results["floor_gb"])

        cold = _measured(dag_cmd, env)  # fresh warehouse: every sweep file validated
        results["dag_cold"] = cold[0]
        show("dag cold", cold[0], cold[1], f"dag cold/floor = {cold[0] / results['floor']:.1f}x")
        runs = [_measured(dag_cmd, env) for _ in range(args.repeats)]
        results["dag"] = statistics.median(r[0] for r in runs)
        results["dag_cold_gb"] = cold[1]
        results["dag_gb"] = max(r[1] for r in runs)
        show(
            "dag", results["dag"], results["dag_gb"], f"dag/floor = {results['dag'] / results['floor']:.1f}x"
        )

        if extra is not None:
            # a new sweep file joins the glob: it alone is decoded and checked, then the DAG reruns
            link = Path(glob).parent / extra.name
            link.symlink_to(extra)
            grown = total + rows_per_file[len(chosen)]
            seconds, peak, _ = _measured(dag_cmd, env)
            link.unlink()
            results["dag_plus_file"] = seconds
            show("dag +1 file", seconds, peak, f"+{rows_per_file[len(chosen)]:,} rows", rows=grown)

        for step, mode, limit in (
            ("peer", "vectorised", args.peer_max_rows),
            ("seed peer", "per_row", args.seed_peer_max_rows),
        ):
            if total > limit * 1e6:
                continue
            seconds, peak, _ = _measured(peer_cmd(chosen, mode), env)
            results[step] = seconds
            show(step, seconds, peak, f"{step}/dag = {seconds / results['dag']:.1f}x")

        if args.spark and size == min(args.sizes):
            spark_env = dict(env, STRONGLENS_HOME=str(work / f"spark-{size:g}M"))
            Path(spark_env["STRONGLENS_HOME"]).mkdir(exist_ok=True)
            subprocess.run(
                [dbt, "seed", "--target", "spark", *project], env=spark_env, check=True, capture_output=True
            )
            spark_cmd = [
                dbt,
                "run",
                "--target",
                "spark",
                "--select",
                "+negatives",
                "--exclude",
                "resource_type:seed",
            ]
            seconds, peak, _ = _measured([*spark_cmd, *project], spark_env)
            show("spark local[2]", seconds, peak, f"spark/dag = {seconds / results['dag']:.1f}x")
            spark_line = (
                f"rows/s per core on {total:,} rows: Spark local[2] {total / seconds / 2:,.0f}, "
                f"DuckDB (warm DAG, {cores} threads) {total / results['dag'] / cores:,.0f} "
                f"({seconds / results['dag']:.1f}x slower; JVM start-up and per-stage overhead included)"
            )
        table.append(results)

    print(
        "\n| sweep rows | floor s | DAG cold s | DAG s | DAG/floor | DAG +1 file s | peer s (x DAG) "
        "| seed peer s (x DAG) | peak GB floor / DAG cold / DAG |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table:
        peer = f"{r['peer']:.2f} ({r['peer'] / r['dag']:.1f}x)" if "peer" in r else "-"
        seed = f"{r['seed peer']:.2f} ({r['seed peer'] / r['dag']:.1f}x)" if "seed peer" in r else "-"
        plus = f"{r['dag_plus_file']:.2f}" if "dag_plus_file" in r else "-"
        print(
            f"| {int(r['rows']):,} | {r['floor']:.2f} | {r['dag_cold']:.2f} | {r['dag']:.2f} "
            f"| {r['dag'] / r['floor']:.1f}x | {plus} | {peer} | {seed} "
            f"| {r['floor_gb']:.2f} / {r['dag_cold_gb']:.2f} / {r['dag_gb']:.2f} |"
        )
    scaling = ", ".join(
        f"{r['rows'] / 1e6:.0f}M: {r['dag']:.1f} s / {r['dag_gb']:.2f} GB "
        f"(first build {r['dag_cold_gb']:.2f} GB)"
        for r in table
    )
    intercept, slope = _extrapolation([(int(r["rows"]), r["dag"]) for r in table])
    print(f"\nscaling (warm DAG, {cores} cores): {scaling}")
    if len(table) > 1:
        print(_split_line(table, intercept, slope))
    last = table[-1]
    cold_per_row = (last["dag_cold"] - last["dag"]) / last["rows"]
    for n_cores in EXTRAPOLATE_CORES:
        # linear in rows; linear in cores (DuckDB parallelises scans, joins and aggregates per
        # thread; the per-file validation too) -- an assumption, not measured beyond this machine
        seconds = intercept + slope * DR10_ROWS * cores / n_cores
        once = cold_per_row * DR10_ROWS * cores / n_cores
        print(
            f"extrapolated full DR10 ({DR10_ROWS:.3g} rows) on one {n_cores}-core machine: "
            f"{seconds / 3600:.2f} h per rebuild (+{once / 3600:.2f} h once: first validation of every file)"
        )
    if spark_line:
        print(spark_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
