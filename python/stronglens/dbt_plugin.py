"""dbt-duckdb plugin: registers the sweep-validation functions on every connection dbt opens.

profiles.yml lists it under `plugins`, so the validation macro can call
``stronglens_sweep_fingerprint(path)`` and ``stronglens_decode_sweep(path, columns)`` in SQL
(see :mod:`stronglens.sweep_validation` for why they are Python).
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from stronglens import sweep_validation


def _decode(path: str, columns: str) -> str:
    return sweep_validation.decode_problem(path, [c.strip() for c in columns.split(",") if c.strip()])


class Plugin(BasePlugin):
    """Adds the two scalar functions (one call per sweep file, not per row)."""

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        conn.create_function(
            "stronglens_sweep_fingerprint",
            sweep_validation.fingerprint,
            ["VARCHAR"],
            "VARCHAR",
            side_effects=True,
        )
        conn.create_function(
            "stronglens_decode_sweep", _decode, ["VARCHAR", "VARCHAR"], "VARCHAR", side_effects=True
        )
