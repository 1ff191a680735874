"""dbt-duckdb plugin: registers the sweep-validation functions on every connection dbt opens.

profiles.yml lists it under `plugins`, so the validation macro can call
``stronglens_sweep_fingerprint(path)`` and ``stronglens_decode_sweep(path, columns)`` in SQL
(see :mod:`stronglens.sweep_validation` for why they are Python). Both take Arrow batches of paths
and work on the files of a batch in parallel threads (pyarrow releases the GIL while it reads and
decodes), one call per batch of files, never per row of a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from stronglens import sweep_validation


def _parallel(function: Callable[..., str], *columns: pa.Array) -> pa.Array:
    """Apply ``function`` to the rows of ``columns`` on a thread pool; a string array back."""
    rows = list(zip(*(c.to_pylist() for c in columns), strict=True))
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return pa.array(list(pool.map(lambda row: function(*row), rows)), pa.string())


def _fingerprints(paths: pa.Array) -> pa.Array:
    return _parallel(sweep_validation.fingerprint, paths)


def _decode(path: str, columns: str) -> str:
    return sweep_validation.decode_problem(path, [c.strip() for c in columns.split(",") if c.strip()])


def _decodes(paths: pa.Array, columns: pa.Array) -> pa.Array:
    return _parallel(_decode, paths, columns)


class Plugin(BasePlugin):
    """Adds the two scalar functions."""

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.create_function(
            "stronglens_sweep_fingerprint",
            _fingerprints,
            ["VARCHAR"],
            "VARCHAR",
            type="arrow",
            side_effects=True,
        )
        conn.create_function(
            "stronglens_decode_sweep",
            _decodes,
            ["VARCHAR", "VARCHAR"],
            "VARCHAR",
            type="arrow",
            side_effects=True,
        )
