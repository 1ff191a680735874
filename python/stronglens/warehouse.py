"""Read the warehouse: the DuckLake catalog that every ``dbt build`` writes a snapshot into.

Reading goes through DuckLake rather than dbt's DuckDB file so that any earlier build can be read
back exactly as it was written (``ATTACH ... (SNAPSHOT_VERSION n)``), and so that reads never hold
the write lock a running build needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from stronglens import paths
from stronglens.storage import connect_duckdb

LAKE_ALIAS = "lake"


class WarehouseError(RuntimeError):
    """The warehouse is missing or does not hold what was asked for; the message says what to do."""


@dataclass(frozen=True)
class Build:
    """One row of ``build_runs``: a build and the DuckLake snapshot holding its outputs."""

    build_id: int
    snapshot_id: int
    started_at: str
    finished_at: str
    status: str


def _attach_sql(snapshot_id: int | None) -> str:
    catalog = paths.catalog_path()
    if not catalog.exists():
        raise WarehouseError(
            f"No warehouse at {catalog.parent} (no {catalog.name}). Build one with `stronglens build` "
            f"(or `make run`), or point STRONGLENS_HOME at an existing warehouse."
        )
    options = ["READ_ONLY"]
    if snapshot_id is not None:
        options.append(f"SNAPSHOT_VERSION {int(snapshot_id)}")
    return f"ATTACH 'ducklake:{catalog}' AS {LAKE_ALIAS} ({', '.join(options)})"


def connect_lake(snapshot_id: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake attached read-only (at a snapshot if given) and in use."""
    con = connect_duckdb()
    con.execute("LOAD ducklake")
    try:
        con.execute(_attach_sql(snapshot_id))
    except duckdb.Error as exc:
        con.close()
        raise WarehouseError(f"Cannot open the warehouse catalog {paths.catalog_path()}: {exc}") from exc
    con.execute(f"USE {LAKE_ALIAS}")
    return con


def list_builds(con: duckdb.DuckDBPyConnection) -> list[Build]:
    """Every recorded build, oldest first (empty before the first build that recorded itself)."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_catalog = ? and table_name = 'build_runs'",
        [LAKE_ALIAS],
    ).fetchone()[0]
    if not exists:
        return []
    rows = con.execute(
        "select build_id, snapshot_id, cast(started_at as varchar), cast(finished_at as varchar), status "
        "from build_runs order by build_id"
    ).fetchall()
    return [Build(*row) for row in rows]


def resolve_snapshot(build_id: int | None) -> int | None:
    """The snapshot to read for ``build_id``; ``None`` (latest) when no build is named."""
    if build_id is None:
        return None
    con = connect_lake()
    try:
        builds = {b.build_id: b for b in list_builds(con)}
    finally:
        con.close()
    if build_id not in builds:
        known = ", ".join(str(b) for b in sorted(builds)) or "none yet"
        raise WarehouseError(f"No build {build_id} in this warehouse (builds: {known}). See `stronglens builds`.")
    return builds[build_id].snapshot_id
