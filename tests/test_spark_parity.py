"""The catalogue models on Spark (dbt-spark, session method, local[2]) equal the DuckDB build.

Run by `make test-spark` (which installs pyspark and dbt-spark: the `spark` extra) and by CI; the
`spark` marker keeps it out of `make test`. Both engines build the catalogue DAG -- seeds, staging,
intermediates, marts, and every dbt data test -- from the same slice of the embedded sky, and the
marts that make up the training set must agree row for row: keys and integer/text/boolean columns
exactly, floating-point columns to 1e-9 relative (stronglens.parity).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stronglens import parity
from stronglens.synth import generate_sky
from tests.pipeline import ROOT, build_or_fail, lake

pytestmark = pytest.mark.spark

#: Four 5x5 deg tiles (a 10x10 deg slice at 400 objects/deg^2) holding matched lens candidates.
SLICE_TILES = [
    "sweep-150p000-155p005",
    "sweep-155p000-160p005",
    "sweep-150p005-155p010",
    "sweep-155p005-160p010",
]


@pytest.fixture(scope="module")
def slice_glob(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("spark-slice")
    generate_sky(str(out), density=400, seed=3, tiles=SLICE_TILES, progress=False)
    return str(out / "*.parquet")


def _spark_build(home: Path, sweeps: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """`dbt build --target spark` without the DuckDB-only Python models (tag cutouts)."""
    env = dict(os.environ, STRONGLENS_HOME=str(home), STRONGLENS_SWEEPS=sweeps)
    dbt = str(Path(sys.executable).parent / "dbt")
    t0 = time.perf_counter()
    result = subprocess.run(
        [dbt, "build", "--target", "spark", "--exclude", "tag:cutouts"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return result, time.perf_counter() - t0


def test_spark_marts_equal_duckdb(slice_glob: str, tmp_path: Path) -> None:
    duck_home, spark_home = tmp_path / "duckdb", tmp_path / "spark"
    build_or_fail(duck_home, slice_glob, "--exclude", "tag:cutouts")
    result, seconds = _spark_build(spark_home, slice_glob)
    assert result.returncode == 0, f"Spark build failed:\n{result.stdout[-8000:]}\n{result.stderr[-3000:]}"
    print(f"\nSpark dbt build (local[2]) of the slice: {seconds:.1f} s")

    tables = spark_home / "spark" / "tables"
    reports: list[parity.ColumnReport] = []
    with lake(duck_home) as con:
        for table, keys in parity.MART_KEYS.items():
            duck = con.execute(f"select * from {table}").fetch_arrow_table()
            spark = parity.read_spark_table(tables, table)
            assert duck.num_rows > 0, f"{table} is empty: the slice tests nothing"
            reports += parity.compare_tables(table, duck, spark, keys)
    print(parity.format_reports(reports))
    assert all(r.equal for r in reports), parity.format_reports([r for r in reports if not r.equal])
    matched = next(r for r in reports if (r.table, r.column) == ("positives", "is_matched"))
    assert "sum=0" not in matched.checksum_a, "no matched positive in the slice"

    # The build registry works on Spark too: one successful build recorded with its vars.
    log = parity.read_spark_table(tables, "build_log").to_pylist()
    assert [(row["build_id"], row["status"], row["command"]) for row in log] == [(1, "success", "build")]
    assert '"neg_pos_ratio": 100' in log[0]["vars_json"]


def test_spark_validation_names_both_files_and_rows_of_a_duplicate(slice_glob: str, tmp_path: Path) -> None:
    """The Spark sweep validation (spark__validate_sweeps) fails the staging pre-hook naming every
    file and 1-based row of a duplicated key."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    sky = tmp_path / "sky"
    shutil.copytree(Path(slice_glob).parent, sky)
    first, second = sorted(sky.glob("*.parquet"))[:2]
    n_second = pq.ParquetFile(second).metadata.num_rows
    pq.write_table(pa.concat_tables([pq.read_table(second), pq.read_table(first).slice(6, 1)]), second)
    env = dict(os.environ, STRONGLENS_HOME=str(tmp_path / "home"), STRONGLENS_SWEEPS=str(sky / "*.parquet"))
    dbt = str(Path(sys.executable).parent / "dbt")
    result = subprocess.run(
        [dbt, "run", "--target", "spark", "--select", "stg_dr10__sweeps"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{first} row 7: release/brickid/objid: key (" in output, output[-4000:]
    assert f"{second} row {n_second + 1}: release/brickid/objid: key (" in output, output[-4000:]
