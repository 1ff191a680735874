"""Bad sweep files fail the build with a message naming the file and the problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from stronglens.synth import generate_sky
from tests.pipeline import ROOT, run_build

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
        # rows count from 1: index 17 is the 18th row
        (_nan_dec, "row 18: dec: value nan is not a valid coordinate"),
        (_ra_out_of_range, "row 6: ra: value 361.5 is not a valid coordinate"),
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


def _build_output(sky: Path, home: Path) -> tuple[int, str]:
    result = run_build(home, str(sky / "*.parquet"), "--select", "+stg_dr10__sweeps")
    return result.returncode, result.stdout + result.stderr


def _scribble(path: Path, n_bytes: int = 4096) -> None:
    """Overwrite ``n_bytes`` in the middle of the file in place (same size, same footer). Should the
    middle fall in a column the DAG never reads (harmless there), the middle of `ra`'s data is used."""
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunks = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}

    def span(name: str) -> tuple[int, int]:
        c = chunks[name]
        start = c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset
        return start, start + c.total_compressed_size

    needed = set(pa_csv.read_csv(ROOT / "seeds" / "sweep_required_columns.csv")["column_name"].to_pylist())
    middle = path.stat().st_size // 2
    if not any(span(n)[0] <= middle < span(n)[1] for n in needed if n in chunks):
        middle = sum(span("ra")) // 2
    with path.open("r+b") as handle:
        handle.seek(middle - n_bytes // 2)
        handle.write(np.random.default_rng(0).bytes(n_bytes))


def test_garbage_in_the_middle_fails_validation_naming_the_file(small_sky: Path, tmp_path: Path) -> None:
    sky = tmp_path / "sky"
    shutil.copytree(small_sky, sky)
    victim = sorted(sky.glob("*.parquet"))[1]
    _scribble(victim)
    code, output = _build_output(sky, tmp_path / "home")
    assert code != 0
    assert "Sweep decode check failed" in output, output[-3000:]
    assert f"{victim}: rows 1-" in output, output[-3000:]


def test_duplicate_across_files_names_both_files_and_rows(small_sky: Path, tmp_path: Path) -> None:
    sky = tmp_path / "sky"
    shutil.copytree(small_sky, sky)
    first, second = sorted(sky.glob("*.parquet"))[:2]
    n_second = pq.ParquetFile(second).metadata.num_rows
    # rows 14-16 (1-based) of the first file appended to the second
    pq.write_table(pa.concat_tables([pq.read_table(second), pq.read_table(first).slice(13, 3)]), second)
    code, output = _build_output(sky, tmp_path / "home")
    assert code != 0
    assert "appears 2 times" in output, output[-3000:]
    for k in range(3):
        assert f"{first} row {14 + k}; {second} row {n_second + 1 + k}" in output, output[-3000:]


def test_unchanged_files_are_not_validated_again(small_sky: Path, tmp_path: Path) -> None:
    """The validation cache: a rebuild skips unchanged files; a new file is the only one decoded;
    a file rewritten after it passed (same size, new bytes) is checked again and fails."""
    sky, home = tmp_path / "sky", tmp_path / "home"
    sky.mkdir()
    files = sorted(small_sky.glob("*.parquet"))
    shutil.copy(files[0], sky / files[0].name)
    code, output = _build_output(sky, home)
    assert code == 0, output[-3000:]
    assert "Sweep validation: 1 of 1 files decoded and checked" in output, output[-3000:]

    code, output = _build_output(sky, home)
    assert code == 0, output[-3000:]
    assert "all 1 files unchanged since they passed (cache)" in output, output[-3000:]

    shutil.copy(files[1], sky / files[1].name)
    code, output = _build_output(sky, home)
    assert code == 0, output[-3000:]
    assert "Sweep validation: 1 of 2 files decoded and checked" in output, output[-3000:]

    _scribble(sky / files[0].name)
    code, output = _build_output(sky, home)
    assert code != 0
    assert f"{sky / files[0].name}: rows 1-" in output, output[-3000:]
