"""Bad sweep files fail the build with a message naming the file and the problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stronglens.synth import generate_sky
from tests.pipeline import run_build

TILES = ["sweep-150p000-155p005", "sweep-155p000-160p005"]


@pytest.fixture(scope="module")
def small_sky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small-sky")
    generate_sky(str(out), density=400, seed=3, tiles=TILES, progress=False)
    return out


def _drop_column(table: pa.Table) -> pa.Table:
    return table.drop_columns(["psfsize_z"])


def _wrong_dtype(table: pa.Table) -> pa.Table:
    i = table.schema.get_field_index("dec")
    return table.set_column(i, "dec", pc.cast(table["dec"], pa.float32()))


def _nan_dec(table: pa.Table) -> pa.Table:
    dec = table["dec"].to_numpy().copy()
    dec[17] = np.nan
    return table.set_column(table.schema.get_field_index("dec"), "dec", pa.array(dec))


def _ra_out_of_range(table: pa.Table) -> pa.Table:
    ra = table["ra"].to_numpy().copy()
    ra[5] = 361.5
    return table.set_column(table.schema.get_field_index("ra"), "ra", pa.array(ra))


def _duplicate_key(table: pa.Table) -> pa.Table:
    return pa.concat_tables([table, table.slice(3, 1)])


@pytest.mark.parametrize(
    ("breaker", "expected"),
    [
        (_drop_column, "column 'psfsize_z': missing column"),
        (_wrong_dtype, "column 'dec': column has type FLOAT, expected DOUBLE"),
        (_nan_dec, "row 17: dec: value nan is not a valid coordinate"),
        (_ra_out_of_range, "row 5: ra: value 361.5 is not a valid coordinate"),
        (_duplicate_key, "appears 2 times"),
    ],
    ids=["missing-column", "wrong-dtype", "nan-coordinate", "ra-out-of-range", "duplicate-key"],
)
def test_bad_sweep_fails_build_naming_file(
    small_sky: Path, tmp_path: Path, breaker: Callable[[pa.Table], pa.Table], expected: str
) -> None:
    sky = tmp_path / "sky"
    shutil.copytree(small_sky, sky)
    victim = sorted(sky.glob("*.parquet"))[1]
    pq.write_table(breaker(pq.read_table(victim)), victim)
    result = run_build(tmp_path / "home", str(sky / "*.parquet"), "--select", "+stg_dr10__sweeps")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert str(victim) in output, output[-3000:]
    assert expected.lower() in output.lower(), output[-3000:]


def test_no_sweep_files_says_what_to_do(tmp_path: Path) -> None:
    result = run_build(
        tmp_path / "home", str(tmp_path / "nothing" / "*.parquet"), "--select", "+stg_dr10__sweeps"
    )
    assert result.returncode != 0
    assert "No sweep files match" in result.stdout + result.stderr
    assert "stronglens synth" in result.stdout + result.stderr
