"""Read the warehouse: the DuckLake catalog that every ``dbt build`` writes a snapshot into.

Reading goes through DuckLake rather than dbt's DuckDB file so that any earlier build can be read
back exactly as it was written (``ATTACH ... (SNAPSHOT_VERSION n)``), and so that reads never hold
the write lock a running build needs.

Promotion: by default readers see the newest build whose quality check passed (``stronglens check``
records every check in the lake table ``build_checks``), so a failed or unchecked build is never
served as current; any build stays readable by its id.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import duckdb

from stronglens import paths
from stronglens.sqltext import literal
from stronglens.storage import connect_duckdb

LAKE_ALIAS = "lake"
#: The newest snapshot, attached next to a pinned one so build_checks stays readable.
LATEST_ALIAS = "lake_latest"
#: Written by ``stronglens check`` (:func:`record_check`): build_id, checked_at, success, summary.
CHECKS_TABLE = "build_checks"


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
    #: Outcome of the build's latest quality check: 'passed', 'failed' or 'unchecked'.
    check: str


def legacy_catalog_message() -> str | None:
    """Why this warehouse cannot be opened if it still has a DuckDB-file catalog, else None."""
    legacy = paths.legacy_catalog_path()
    if paths.postgres_catalog() is None and legacy.exists() and not paths.catalog_path().exists():
        return (
            f"{legacy} is a DuckDB-file DuckLake catalog (one process at a time: reads failed during "
            f"builds). This version keeps the catalog in {paths.catalog_path().name} (SQLite, readers "
            "work during builds) and does not convert old catalogs. Rebuild: move the old warehouse "
            f"aside (mv {legacy.parent} {legacy.parent}.old) and run `stronglens run` (or `stronglens "
            "build`); read the old builds with the previous stronglens version if you still need them."
        )
    return None


def prepare_catalog() -> None:
    """Make sure a build can write the catalog: the SQLite file exists in WAL mode.

    WAL is what lets readers hold the catalog open while the build commits (in the default rollback
    journal a reader's open transaction makes the writer's commit fail with "database is locked").
    The mode persists in the file, so setting it once before DuckLake creates its tables suffices.
    A PostgreSQL catalog needs nothing here (PostgreSQL serves concurrent readers itself).
    """
    message = legacy_catalog_message()
    if message:
        raise WarehouseError(message)
    if paths.postgres_catalog() is not None:
        return
    catalog = paths.catalog_path()
    catalog.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(catalog)) as db:
        mode = db.execute("pragma journal_mode=wal").fetchone()[0]
    if mode != "wal":
        raise WarehouseError(f"Cannot switch the catalog {catalog} to WAL mode (got {mode!r}).")


def attach_lake(
    con: duckdb.DuckDBPyConnection,
    snapshot_id: int | None = None,
    read_only: bool = True,
    alias: str = LAKE_ALIAS,
) -> None:
    """Attach this warehouse's DuckLake as ``lake`` on ``con`` (read-only, at a snapshot if given).

    ``OVERRIDE_DATA_PATH``: the data folder is always this warehouse's own, whatever path the
    catalog was created with -- so a copied or moved warehouse reads its own files (the catalog
    stores them relative to the data path).
    """
    message = legacy_catalog_message()
    if message:
        raise WarehouseError(message)
    if paths.postgres_catalog() is None and not paths.catalog_path().exists():
        raise WarehouseError(
            f"No warehouse at {paths.warehouse_home()} (no {paths.CATALOG_FILENAME}). Build one with "
            "`stronglens build` (or `make run`), or point STRONGLENS_HOME at an existing warehouse."
        )
    options = [f"DATA_PATH {literal(paths.lake_data_path())}", "OVERRIDE_DATA_PATH true"]
    if read_only:
        options.append("READ_ONLY")
    if snapshot_id is not None:
        options.append(f"SNAPSHOT_VERSION {int(snapshot_id)}")
    con.execute("LOAD ducklake")
    con.execute("LOAD postgres_scanner" if paths.postgres_catalog() else "LOAD sqlite_scanner")
    target = literal("ducklake:" + paths.catalog_target())
    try:
        con.execute(f"ATTACH {target} AS {alias} ({', '.join(options)})")
    except duckdb.Error as exc:
        raise WarehouseError(f"Cannot open the warehouse catalog {paths.catalog_label()}: {exc}") from exc


def connect_lake(snapshot_id: int | None = None, alias: str = LAKE_ALIAS) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake attached read-only (at a snapshot if given) and in use."""
    con = connect_duckdb()
    try:
        attach_lake(con, snapshot_id, alias=alias)
    except Exception:
        con.close()
        raise
    con.execute(f"USE {alias}")
    return con


def expose_checks(con: duckdb.DuckDBPyConnection) -> None:
    """Make ``build_checks`` readable on a connection pinned to a build's snapshot.

    A build is served only after its check, so the check rows live in snapshots *after* the served
    one: a temporary view over the newest snapshot (attached read-only as ``lake_latest``) shows
    every check of every build, whichever build the connection reads.
    """
    attach_lake(con, alias=LATEST_ALIAS)
    exists = con.execute(
        "select count(*) from information_schema.tables where table_catalog = ? and table_name = ?",
        [LATEST_ALIAS, CHECKS_TABLE],
    ).fetchone()[0]
    if exists:
        con.execute(
            f"create or replace temp view {CHECKS_TABLE} as select * from {LATEST_ALIAS}.main.{CHECKS_TABLE}"
        )


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_catalog = ? and table_name = ?",
            [LAKE_ALIAS, name],
        ).fetchone()[0]
    )


def list_builds(con: duckdb.DuckDBPyConnection) -> list[Build]:
    """Every recorded build with its latest check outcome, oldest first (empty before the first
    build that recorded itself)."""
    if not _table_exists(con, "build_runs"):
        return []
    latest_check = "select null::integer as build_id, null::boolean as success where false"
    if _table_exists(con, CHECKS_TABLE):
        latest_check = (
            f"select build_id, arg_max(success, checked_at) as success from {CHECKS_TABLE} group by build_id"
        )
    rows = con.execute(
        "select b.build_id, b.snapshot_id, cast(b.started_at as varchar), cast(b.finished_at as varchar), "
        "b.status, "
        "case when c.success then 'passed' when not c.success then 'failed' else 'unchecked' end "
        f"from build_runs as b left join ({latest_check}) as c on c.build_id = b.build_id order by b.build_id"
    ).fetchall()
    return [Build(*row) for row in rows]


def current_build(builds: list[Build]) -> Build:
    """The build served by default: the newest one whose latest quality check passed."""
    passed = [b for b in builds if b.check == "passed"]
    if passed:
        return passed[-1]
    if not builds:
        raise WarehouseError("No builds recorded yet: run `stronglens build`, then `stronglens check`.")
    states = ", ".join(f"build {b.build_id}: {b.check}" for b in builds[-5:])
    raise WarehouseError(
        f"No build has passed its quality check yet ({states}), so there is no current build to serve. "
        "Run `stronglens check` to check the latest build (or `stronglens check --build N`), or read one "
        "build regardless with --build N."
    )


def resolve_snapshot(build_id: int | None) -> int:
    """The snapshot to read: build ``build_id``'s, or the current (newest passed) build's when None."""
    con = connect_lake()
    try:
        builds = list_builds(con)
    finally:
        con.close()
    if build_id is None:
        return current_build(builds).snapshot_id
    by_id = {b.build_id: b for b in builds}
    if build_id not in by_id:
        known = ", ".join(str(b) for b in sorted(by_id)) or "none yet"
        raise WarehouseError(
            f"No build {build_id} in this warehouse (builds: {known}). See `stronglens builds`."
        )
    snapshot = by_id[build_id].snapshot_id
    con = connect_lake()
    try:
        live = con.execute(f"select count(*) from {LAKE_ALIAS}.snapshots() where snapshot_id = ?", [snapshot])
        expired = live.fetchone()[0] == 0
    finally:
        con.close()
    if expired:
        raise WarehouseError(
            f"Build {build_id} was removed by `stronglens gc` (its snapshot {snapshot} expired); "
            "see `stronglens builds` for the builds that can still be read."
        )
    return snapshot


def build_record(build_id: int | None) -> tuple[int, int, str, dict[str, Any]]:
    """(build_id, snapshot_id, status, vars) of ``build_id`` from ``build_runs``, default the newest."""
    con = connect_lake()
    try:
        rows = con.execute(
            "select build_id, snapshot_id, status, vars_json from build_runs order by build_id"
        ).fetchall()
    except duckdb.Error as exc:
        raise WarehouseError(
            f"Cannot read build_runs ({exc}): build the warehouse with `stronglens build`."
        ) from exc
    finally:
        con.close()
    if not rows:
        raise WarehouseError("No builds recorded yet: run `stronglens build` first.")
    chosen = rows[-1] if build_id is None else next((r for r in rows if r[0] == build_id), None)
    if chosen is None:
        known = ", ".join(str(r[0]) for r in rows)
        raise WarehouseError(
            f"No build {build_id} in this warehouse (builds: {known}). See `stronglens builds`."
        )
    return int(chosen[0]), int(chosen[1]), str(chosen[2]), json.loads(chosen[3])


def record_check(build_id: int, checked_at: str, success: bool, summary_json: str) -> None:
    """Append one quality check to the lake table ``build_checks`` (a new DuckLake snapshot)."""
    con = connect_duckdb()
    try:
        attach_lake(con, read_only=False)
        con.execute(
            f"create table if not exists {LAKE_ALIAS}.main.{CHECKS_TABLE} "
            "(build_id integer, checked_at timestamp with time zone, success boolean, summary json)"
        )
        con.execute(
            f"insert into {LAKE_ALIAS}.main.{CHECKS_TABLE} "
            "values (?, cast(? as timestamp with time zone), ?, ?)",
            [build_id, checked_at, success, summary_json],
        )
    except duckdb.Error as exc:
        raise WarehouseError(
            f"Cannot record the check in {paths.catalog_label()} ({exc}). Is a build running? Retry after it."
        ) from exc
    finally:
        con.close()
