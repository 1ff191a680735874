"""dbt-duckdb plugin: what every DuckDB connection dbt opens needs from the Python package.

``profiles.yml`` names it under ``plugins:`` (``module: stronglens.dbt_plugin``). On every connection
:meth:`Plugin.configure_connection` (run after the extensions load and before the DuckLake catalog is
attached, so an ``s3://`` data path is readable):

1. creates the S3 secret of :mod:`stronglens.storage`. Why here rather than a ``secrets:`` block in
   ``profiles.yml``: the S3 settings (credentials, session token, region, endpoint, URL style, SSL)
   are derived from the ``AWS_*`` environment in one place,
   :func:`stronglens.storage.s3_settings_from_env`, for pyarrow, DuckDB and dbt alike. A second
   derivation in Jinja had already drifted (it dropped ``AWS_SESSION_TOKEN``, so temporary
   credentials worked in Python but not in dbt).
2. registers the sweep-validation functions ``stronglens_sweep_fingerprint(path)`` and
   ``stronglens_decode_sweep(path, columns)`` that the validation macro calls (see
   :mod:`stronglens.sweep_validation` for why they are Python). Both take Arrow batches of paths and
   work on the files of a batch in parallel threads (pyarrow releases the GIL while it reads and
   decodes), one call per batch of files, never per row of a file; and
   ``stronglens_renderer_fingerprint()``, the synthetic renderer's identity that the cutout store
   key includes (macro ``cutout_params_key``).
3. puts the SQLite catalog in WAL mode (:func:`stronglens.warehouse.prepare_catalog`), as
   ``stronglens build`` does, so readers keep working during a plain ``dbt build`` too, and a
   warehouse with the old DuckDB-file catalog is refused with what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from stronglens import sweep_validation
from stronglens.storage import duckdb_secret_sql, s3_settings_from_env
from stronglens.warehouse import prepare_catalog


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


def _renderer_fingerprint() -> str:
    """The renderer's fingerprint, imported on first call: the renderer pulls in healpy, scipy and
    the synthetic sky (~3 s on 2 cores), which every connection of a catalogue-only build (the
    benchmark's DAG, `dbt run --select +negatives`) would otherwise pay for a function it never calls."""
    from stronglens.cutouts.render import renderer_fingerprint

    return renderer_fingerprint()


class Plugin(BasePlugin):
    """Creates the S3 secret, adds the sweep-validation and renderer functions, prepares the catalog."""

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        """Create the S3 secret (errors name the ``AWS_*`` variable), the functions, the WAL catalog."""
        conn.execute(duckdb_secret_sql(s3_settings_from_env()))
        prepare_catalog()
        conn.create_function(
            "stronglens_sweep_fingerprint",
            _fingerprints,
            ["VARCHAR"],
            "VARCHAR",
            type="arrow",
            side_effects=True,
        )
        conn.create_function(
            "stronglens_renderer_fingerprint", _renderer_fingerprint, [], "VARCHAR", side_effects=False
        )
        conn.create_function(
            "stronglens_decode_sweep",
            _decodes,
            ["VARCHAR", "VARCHAR"],
            "VARCHAR",
            type="arrow",
            side_effects=True,
        )
