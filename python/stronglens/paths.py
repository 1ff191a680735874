"""Where the project and the warehouse live.

The dbt project is the repository root (the folder holding ``dbt_project.yml``).  The warehouse --
dbt's DuckDB file, the DuckLake catalog and its Parquet data, the embedded sweeps -- lives in
``$STRONGLENS_HOME`` (default ``<project>/warehouse``, git-ignored), so that one environment variable
moves every output of a build.

This module is the one place that resolves locations.  ``stronglens`` exports each of them to dbt
as an environment variable (:func:`dbt_environment`); dbt reads them in ``profiles.yml`` and through
the ``sweeps`` / ``cutout_root`` vars of ``dbt_project.yml``, whose fallbacks (for a plain
``dbt build``) derive from the profile's DuckDB file in ``$STRONGLENS_HOME`` as these functions do
(tests/test_config_single_source.py checks that both sides agree).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from pathlib import Path

from stronglens import storage

HOME_ENV = "STRONGLENS_HOME"
SWEEPS_ENV = "STRONGLENS_SWEEPS"
LAKE_DATA_ENV = "STRONGLENS_LAKE_DATA"
CUTOUTS_ENV = "STRONGLENS_CUTOUTS"
#: The warehouse folder inside the project when ``$STRONGLENS_HOME`` is unset (profiles.yml's default).
DEFAULT_HOME_DIRNAME = "warehouse"
CATALOG_ENV = "STRONGLENS_CATALOG"
#: The DuckLake catalog file of a warehouse (SQLite in WAL mode: readers work during a build).
CATALOG_FILENAME = "catalog.sqlite"
#: The catalog file of warehouses made before the SQLite catalog (a DuckDB file: one process at a time).
LEGACY_CATALOG_FILENAME = "catalog.ducklake"
_POSTGRES_SCHEMES = ("postgres://", "postgresql://")


def project_root() -> Path:
    """The dbt project folder: the nearest ancestor of the cwd with ``dbt_project.yml``, else the
    checkout this package was installed from (editable installs), else an error saying what to do."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "dbt_project.yml").is_file() and (folder / "python" / "stronglens").is_dir():
            return folder
    packaged = Path(__file__).resolve().parents[2]
    if (packaged / "dbt_project.yml").is_file():
        return packaged
    raise FileNotFoundError(
        "Cannot find the stronglens dbt project (dbt_project.yml). Run stronglens from inside the "
        "repository checkout, or install it with `pip install -e <checkout>`."
    )


def warehouse_home() -> Path:
    """The warehouse folder: ``$STRONGLENS_HOME`` or ``<project>/warehouse``."""
    env = os.environ.get(HOME_ENV)
    return Path(env).resolve() if env else project_root() / DEFAULT_HOME_DIRNAME


def default_sweeps_dir() -> Path:
    """Where ``make run`` writes the embedded synthetic sky."""
    return warehouse_home() / "sweeps"


def sweeps_glob() -> str:
    """The sweep files a build reads: ``$STRONGLENS_SWEEPS`` or ``<home>/sweeps/*.parquet``."""
    return os.environ.get(SWEEPS_ENV) or str(default_sweeps_dir() / "*.parquet")


def catalog_path() -> Path:
    """The SQLite DuckLake catalog file (metadata of every snapshot) when no PostgreSQL catalog is set."""
    return warehouse_home() / CATALOG_FILENAME


def legacy_catalog_path() -> Path:
    """Where a warehouse made before the SQLite catalog kept its DuckDB-file catalog."""
    return warehouse_home() / LEGACY_CATALOG_FILENAME


def postgres_catalog() -> str | None:
    """The PostgreSQL catalog URL of ``$STRONGLENS_CATALOG`` (teams), or None for the SQLite file.

    Only ``postgres://`` / ``postgresql://`` URLs are accepted (libpq's URI form, e.g.
    ``postgresql://user:password@host:5432/dbname``); anything else is an error, so a typo never
    silently builds into a fresh local catalog.
    """
    value = os.environ.get(CATALOG_ENV, "").strip()
    if not value:
        return None
    if not value.lower().startswith(_POSTGRES_SCHEMES):
        raise ValueError(
            f"{CATALOG_ENV}={value!r} is not a PostgreSQL URL: set it to postgresql://user@host:port/dbname "
            f"for a shared catalog, or unset it for the SQLite catalog {catalog_path()}"
        )
    return value


def catalog_target() -> str:
    """What follows ``ducklake:`` in ATTACH: ``postgres:<url>`` or ``sqlite:<catalog file>``."""
    url = postgres_catalog()
    return f"postgres:{url}" if url else f"sqlite:{catalog_path()}"


def catalog_label() -> str:
    """The catalog for messages: the SQLite file, or the PostgreSQL URL without its password."""
    url = postgres_catalog()
    if url is None:
        return str(catalog_path())
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def lake_data_path() -> str:
    """The DuckLake data path: ``$STRONGLENS_LAKE_DATA`` (folder or s3:// prefix); else the s3://
    prefix the SQLite catalog was created with (a lake built on S3 is read there without the
    variable); else ``<home>/lake/`` -- a local lake always in its own home, so it can move."""
    explicit = os.environ.get(LAKE_DATA_ENV)
    if explicit:
        return explicit
    stored = _stored_data_path()
    if stored and storage.is_s3(stored):
        return stored
    return str(warehouse_home() / "lake") + "/"


def _stored_data_path() -> str | None:
    """The data path recorded in the SQLite catalog (None without one, or on PostgreSQL)."""
    catalog = catalog_path()
    if postgres_catalog() is not None or not catalog.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)) as db:
            row = db.execute("select value from ducklake_metadata where key = 'data_path'").fetchone()
    except sqlite3.Error:  # a catalog DuckLake has not initialised yet
        return None
    return row[0] if row else None


def cutout_root() -> str:
    """The cutout store: ``$STRONGLENS_CUTOUTS`` (folder or s3:// prefix) or ``<home>/cutouts``."""
    return os.environ.get(CUTOUTS_ENV) or str(warehouse_home() / "cutouts")


def dbt_environment(sweeps: str | None = None) -> dict[str, str]:
    """Every location dbt needs, resolved here, as the environment variables dbt reads.

    ``sweeps`` overrides the sweeps glob (``stronglens build --sweeps``).
    """
    return {
        HOME_ENV: str(warehouse_home()),
        SWEEPS_ENV: sweeps or sweeps_glob(),
        LAKE_DATA_ENV: lake_data_path(),
        CUTOUTS_ENV: cutout_root(),
    }
