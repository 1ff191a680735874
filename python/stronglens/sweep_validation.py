"""Per-file sweep checks that SQL cannot do: a full decode of every page, and a file fingerprint.

Why: DuckDB decodes a Parquet page only when a query needs it, and a corrupt page deep in a file
surfaced mid-build as ``don't know what type:`` with no file named. The validation macro
(macros/validate_sweeps.sql) therefore decodes every page of the columns the DAG reads, file by file,
before anything is staged, and reports the file, row group and 1-based row range of a page that will
not decode or whose CRC32 does not match (the project's writers store page checksums: zstd keeps
incompressible float pages raw, so garbage there would otherwise decode into wrong numbers).
The fingerprint (size, modification time -- local or S3 Last-Modified -- and a hash of the Parquet
footer) keys the validation cache, so a file that passed once is not decoded again until it changes.

Both functions are registered as DuckDB scalar functions by :mod:`stronglens.dbt_plugin` so the
validation macro can call them inside the dbt build.
"""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
from pyarrow import fs as pafs

from stronglens import storage

#: Parquet files end with <footer><4-byte little-endian footer length>"PAR1".
_TAIL = 8


def _open(path: str) -> tuple[pafs.FileSystem, str]:
    return storage.filesystem_for(path)


def fingerprint(path: str) -> str:
    """A key that changes whenever the file is rewritten: size, modification time (local, or S3
    Last-Modified) and the sha256 of the Parquet footer (schema, row groups, statistics, offsets)."""
    filesystem, where = _open(path)
    info = filesystem.get_file_info(where)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"sweep file {path} does not exist")
    size = info.size or 0
    with filesystem.open_input_file(where) as handle:
        if size < 2 * _TAIL:
            footer = handle.read()
        else:
            handle.seek(size - _TAIL)
            tail = handle.read(_TAIL)
            length = int.from_bytes(tail[:4], "little")
            start = max(0, size - _TAIL - length)
            handle.seek(start)
            footer = handle.read(size - start)
    mtime = info.mtime_ns if info.mtime_ns is not None else ""
    return f"{size}:{mtime}:{hashlib.sha256(footer).hexdigest()}"


#: Column chunks decoded together by :func:`decode_problem` (threads decode them in parallel).
_DECODE_COLUMNS = 8


def decode_problem(path: str, columns: list[str]) -> str:
    """Decode every page of ``columns`` in every row group of the file; return '' when all decode,
    else one line naming the row group, its 1-based row range and the decoder's error."""
    filesystem, where = _open(path)
    try:
        # page CRCs (written by stronglens synth / convert-sweeps) catch garbage that still decodes
        parquet = pq.ParquetFile(where, filesystem=filesystem, page_checksum_verification=True)
    except Exception as error:  # any reader failure is a problem to report
        return f"cannot read the Parquet footer: {error}"
    wanted = [c for c in parquet.schema_arrow.names if c.lower() in {n.lower() for n in columns}]
    first_row = 1
    for group in range(parquet.num_row_groups):
        n_rows = parquet.metadata.row_group(group).num_rows
        try:
            # A few column chunks at a time (decoded on threads): memory stays at ~30 MB per file
            # being checked instead of a whole row group of every column (~170 MB, and ~0.5 GB
            # held by the Arrow pool over a first build of 40M rows), so a build's peak stays flat.
            for start in range(0, len(wanted), _DECODE_COLUMNS):
                columns_now = wanted[start : start + _DECODE_COLUMNS]
                decoded = parquet.read_row_group(group, columns=columns_now, use_threads=True).num_rows
                if decoded != n_rows:
                    raise ValueError(
                        f"columns {', '.join(columns_now)}: decoded {decoded} rows, the footer says {n_rows}"
                    )
        except Exception as error:  # corrupt pages raise many types
            message = " ".join(str(error).split())[:300]
            return (
                f"rows {first_row}-{first_row + n_rows - 1} (row group {group + 1} of "
                f"{parquet.num_row_groups}) do not decode: {message}"
            )
        first_row += n_rows
    return ""
