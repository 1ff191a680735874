"""``stronglens gc``: keep the last N builds (and always the served one), reclaim everything else.

Why: every build writes a DuckLake snapshot per model (~0.5 GB of Parquet per full build) and
cutout files; nothing was ever removed.  Retained builds are the newest ``keep`` builds plus the
current (served) build.  Collected:

* cutout files under the cutout roots of this warehouse that no retained build's ``cutouts`` or
  ``simulated_lenses`` table references (the store is keyed by content, so a file shared by a
  retained build stays). The roots are the current one and those recorded by builds that lie
  inside this warehouse's home: a copied warehouse records its original's store, which gc of the
  copy must never touch;
* DuckLake snapshots other than the retained builds' and the newest, then the Parquet files only
  those snapshots used (``ducklake_expire_snapshots`` + ``ducklake_cleanup_old_files``);
* cutout report folders (``reports/cutouts/<invocation>``, ``build-<id>`` links) of dropped builds.

An expired build stays listed in ``build_runs`` (its history) but can no longer be read.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from stronglens import paths, storage
from stronglens.cutouts.store import resolve_uri
from stronglens.warehouse import (
    LAKE_ALIAS,
    Build,
    WarehouseError,
    attach_lake,
    connect_lake,
    current_build,
    list_builds,
)

#: Cutout file suffixes gc may remove (finished files and leftovers of killed writes).
CUTOUT_SUFFIXES = (".npz", ".part")
#: A ``.part`` file younger than this may belong to a write in progress: left alone.
PART_MIN_AGE_S = 3600.0


@dataclass
class GcReport:
    """What ``stronglens gc`` kept and removed."""

    kept: list[int]
    dropped: list[int]
    served: int | None
    cutout_files_removed: int = 0
    cutout_bytes_removed: int = 0
    snapshots_expired: int = 0
    lake_bytes_removed: int = 0
    report_dirs_removed: int = 0
    #: Cutout files each retained build references, by build id.
    referenced: dict[int, int] = field(default_factory=dict)
    dry_run: bool = False

    def format(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        kept = ", ".join(
            f"{b}{' (served)' if b == self.served else ''}: {self.referenced.get(b, 0):,} cutouts"
            for b in self.kept
        )
        return "\n".join(
            [
                f"Kept builds {kept or 'none'}; dropped: {', '.join(map(str, self.dropped)) or 'none'}.",
                f"Cutouts: {verb} {self.cutout_files_removed:,} files ({self.cutout_bytes_removed:,} bytes).",
                f"Lake: {verb} {self.snapshots_expired:,} snapshots, "
                f"{self.lake_bytes_removed:,} bytes of Parquet.",
                f"Reports: {verb} {self.report_dirs_removed:,} cutout report folders.",
                f"Reclaimed {self.cutout_bytes_removed + self.lake_bytes_removed:,} bytes in all.",
            ]
        )


def _retained(builds: list[Build], keep: int) -> tuple[list[Build], Build | None]:
    if keep < 1:
        raise ValueError(f"--keep must be at least 1 (got {keep}): the newest build is always kept")
    try:
        served = current_build(builds)
    except WarehouseError:  # no build has passed: nothing is served
        served = None
    kept = {b.build_id: b for b in builds[-keep:]}
    if served is not None:
        kept[served.build_id] = served
    return sorted(kept.values(), key=lambda b: b.build_id), served


#: Tables whose rows name files in the cutout store, and the column that does: the fetched cutouts
#: and the simulated training lenses (stronglens.training.simulations).
STORE_TABLES = (("cutouts", "path"), ("simulated_lenses", "cutout_path"))


def _cutout_paths(con: duckdb.DuckDBPyConnection, roots: set[str]) -> tuple[int, set[str]]:
    """How many store files a build's tables (:data:`STORE_TABLES`) reference, and where: their
    relative paths resolved under each of ``roots`` (the build's recorded root and the current one:
    a superset only ever keeps more)."""
    stored: list[str] = []
    for table, column in STORE_TABLES:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_catalog = ? and table_name = ?",
            [LAKE_ALIAS, table],
        ).fetchone()[0]
        if exists:
            query = f"select {column} from {table} where {column} is not null"
            stored += [r[0] for r in con.execute(query).fetchall()]
    return len(stored), {os.path.normpath(resolve_uri(path, root)) for path in stored for root in roots}


def _own_roots(recorded: set[str]) -> list[str]:
    """Local cutout roots gc may clean: the current one and recorded ones inside this home."""
    home = paths.warehouse_home().resolve()
    roots = {paths.cutout_root()} | {r for r in recorded if Path(r).resolve().is_relative_to(home)}
    return sorted(r for r in roots if not storage.is_s3(r) and Path(r).is_dir())


def _lake_bytes() -> int:
    data = paths.lake_data_path()
    if storage.is_s3(data):
        return 0
    return sum(f.stat().st_size for f in Path(data).rglob("*") if f.is_file())


def collect(keep: int, dry_run: bool = False) -> GcReport:
    """Remove what no retained build needs (see the module docstring); return what was done."""
    con = connect_lake()
    try:
        builds = list_builds(con)
        rows = con.execute("select build_id, invocation_id, vars_json from build_runs").fetchall()
        live_snapshots = {
            r[0] for r in con.execute(f"select snapshot_id from {LAKE_ALIAS}.snapshots()").fetchall()
        }
    finally:
        con.close()
    if not builds:
        return GcReport(kept=[], dropped=[], served=None, dry_run=dry_run)
    kept, served = _retained(builds, keep)
    kept_ids = {b.build_id for b in kept}
    report = GcReport(
        kept=sorted(kept_ids),
        dropped=[b.build_id for b in builds if b.build_id not in kept_ids],
        served=served.build_id if served else None,
        dry_run=dry_run,
    )
    root_of = {r[0]: json.loads(r[2]).get("cutout_root") for r in rows}
    referenced: set[str] = set()
    for build in kept:
        if build.snapshot_id not in live_snapshots:
            continue
        snap = connect_lake(build.snapshot_id)
        roots = {paths.cutout_root(), root_of.get(build.build_id) or paths.cutout_root()}
        try:
            report.referenced[build.build_id], found = _cutout_paths(snap, roots)
        finally:
            snap.close()
        referenced |= found

    # Cutout files under this warehouse's own local roots (an s3:// root is left alone).
    for root in _own_roots(set(root_of.values()) - {None}):
        for file in Path(root).rglob("*"):
            if not file.is_file() or file.suffix not in CUTOUT_SUFFIXES:
                continue
            if file.suffix == ".part" and time.time() - file.stat().st_mtime < PART_MIN_AGE_S:
                continue
            if os.path.normpath(file) not in referenced:
                report.cutout_files_removed += 1
                report.cutout_bytes_removed += file.stat().st_size
                if not dry_run:
                    file.unlink()

    # Cutout report folders of dropped builds (and their build-<id> links).
    cutout_reports = paths.warehouse_home() / "reports" / "cutouts"
    dropped_invocations = {r[1]: r[0] for r in rows if r[0] not in kept_ids}
    for invocation, build_id in dropped_invocations.items():
        for folder in (cutout_reports / f"build-{build_id}", cutout_reports / str(invocation)):
            if folder.is_symlink() or folder.exists():
                report.report_dirs_removed += folder.is_dir() and not folder.is_symlink()
                if not dry_run:
                    folder.unlink() if folder.is_symlink() else shutil.rmtree(folder)

    # DuckLake: expire every snapshot but the retained builds' and the newest, then their files.
    newest = max(live_snapshots)
    keep_snapshots = {b.snapshot_id for b in kept} | {newest}
    expire = sorted(live_snapshots - keep_snapshots)
    report.snapshots_expired = len(expire)
    if expire and not dry_run:
        before = _lake_bytes()
        con = storage.connect_duckdb()
        try:
            attach_lake(con, read_only=False)
            con.execute(f"call ducklake_expire_snapshots('{LAKE_ALIAS}', versions => ?::ubigint[])", [expire])
            con.execute(f"call ducklake_cleanup_old_files('{LAKE_ALIAS}', cleanup_all => true)")
        finally:
            con.close()
        report.lake_bytes_removed = max(before - _lake_bytes(), 0)
    return report
