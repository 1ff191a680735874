"""stronglens.sweep_validation: the per-file decode and fingerprint behind the sweep validation cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stronglens import sweep_validation


def _write(path: Path, n: int = 30_000, row_group: int = 10_000) -> None:
    rng = np.random.default_rng(1)
    table = pa.table(
        {"ra": rng.uniform(0, 360, n), "dec": rng.uniform(-30, 30, n), "other": rng.normal(size=n)}
    )
    pq.write_table(table, path, compression="zstd", row_group_size=row_group, write_page_checksum=True)


def _overwrite(path: Path, offset: int, n_bytes: int = 4096) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(np.random.default_rng(0).bytes(n_bytes))


def _chunk_middle(path: Path, group: int, column: str) -> int:
    meta = pq.ParquetFile(path).metadata.row_group(group)
    chunk = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column)
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    return start + chunk.total_compressed_size // 2 - 2048


def test_clean_file_decodes(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    _write(path)
    assert sweep_validation.decode_problem(str(path), ["ra", "dec"]) == ""


def test_garbage_in_a_float_page_names_the_rows(tmp_path: Path) -> None:
    """Incompressible float pages are stored raw by zstd: only the page CRC catches the garbage."""
    path = tmp_path / "a.parquet"
    _write(path)
    _overwrite(path, _chunk_middle(path, 1, "ra"))
    problem = sweep_validation.decode_problem(str(path), ["ra", "dec"])
    assert problem.startswith("rows 10001-20000 (row group 2 of 3) do not decode"), problem
    assert "CRC" in problem


def test_garbage_in_an_unread_column_is_not_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    _write(path)
    _overwrite(path, _chunk_middle(path, 0, "other"))
    assert sweep_validation.decode_problem(str(path), ["ra", "dec"]) == ""
    assert sweep_validation.decode_problem(str(path), ["ra", "dec", "other"]).startswith("rows 1-10000")


def test_fingerprint_changes_when_the_file_is_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    _write(path)
    before = sweep_validation.fingerprint(str(path))
    assert sweep_validation.fingerprint(str(path)) == before
    _overwrite(path, _chunk_middle(path, 0, "ra"))  # same size, same footer: only mtime tells
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert sweep_validation.fingerprint(str(path)) != before
    assert sweep_validation.fingerprint(str(path)).split(":")[2] == before.split(":")[2]


def test_truncated_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.parquet"
    _write(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert sweep_validation.decode_problem(str(path), ["ra"]).startswith("cannot read the Parquet footer")
