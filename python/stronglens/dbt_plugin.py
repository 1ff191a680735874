"""dbt-duckdb plugin: give dbt's DuckDB connection the S3 secret of :mod:`stronglens.storage`.

Why a plugin rather than a ``secrets:`` block in ``profiles.yml``: the S3 settings (credentials,
session token, region, endpoint, URL style, SSL) are derived from the ``AWS_*`` environment in one
place, :func:`stronglens.storage.s3_settings_from_env`, for pyarrow, DuckDB and dbt alike.  A second
derivation in Jinja had already drifted (it dropped ``AWS_SESSION_TOKEN``, so temporary credentials
worked in Python but not in dbt).  dbt-duckdb runs :meth:`Plugin.configure_connection` after loading
the extensions and before attaching the DuckLake catalog, so an ``s3://`` data path is readable.

``profiles.yml`` names it under ``plugins:`` (``module: stronglens.dbt_plugin``).
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from stronglens.storage import duckdb_secret_sql, s3_settings_from_env


class Plugin(BasePlugin):
    """Creates the temporary S3 secret on every connection dbt opens."""

    def configure_connection(self, conn: Any) -> None:
        """Create the secret from the current ``AWS_*`` environment (a config error names the variable)."""
        conn.execute(duckdb_secret_sql(s3_settings_from_env()))
