"""Install the DuckDB extensions the warehouse needs from their PyPI wheels.

The DuckDB extension repository is unreachable offline, but the ``duckdb-ext-*`` wheels ship the
binaries.  Installing them into DuckDB's *own* extension directory (``~/.duckdb/extensions``) means
every DuckDB in this environment -- dbt-duckdb's included -- finds them with no extra setting, so a
plain ``dbt build`` works after set-up.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import duckdb_ext

from stronglens.sqltext import literal

#: Extensions the profile loads: httpfs for s3:// reads and writes, ducklake for versioned outputs,
#: sqlite_scanner / postgres_scanner for the DuckLake catalog (a SQLite file, or PostgreSQL for teams).
REQUIRED_EXTENSIONS: tuple[str, ...] = ("httpfs", "ducklake", "sqlite_scanner", "postgres_scanner")


def bundled_extension_path(name: str) -> Path:
    """Path of the extension binary shipped by the ``duckdb-ext-<name>`` wheel for this DuckDB."""
    root = Path(duckdb_ext.get_extension_dir())
    matches = sorted(root.glob(f"v{duckdb.__version__}/*/{name}.duckdb_extension"))
    if not matches:
        raise FileNotFoundError(
            f"No bundled '{name}' extension for DuckDB {duckdb.__version__} under {root}. "
            f"Install the matching wheel: pip install 'duckdb-ext-{name}=={duckdb.__version__}.*'"
        )
    return matches[0]


def install_extensions(names: tuple[str, ...] = REQUIRED_EXTENSIONS) -> list[str]:
    """Install each extension from its wheel unless DuckDB already has it; return those installed."""
    con = duckdb.connect()
    try:
        installed = {
            row[0]
            for row in con.execute(
                "select extension_name from duckdb_extensions() where installed"
            ).fetchall()
        }
        done = []
        for name in names:
            if name not in installed:
                con.execute(f"INSTALL {literal(bundled_extension_path(name))}")
                done.append(name)
        return done
    finally:
        con.close()


if __name__ == "__main__":
    print("installed:", ", ".join(install_extensions()) or "nothing (already present)")
