"""Generate and serve the dbt docs site: every model, column, source, seed, macro and exposure, with
the lineage graph from the DR10 sweeps to the cutout, training and selection-function consumers.

Why a separate target folder (``$STRONGLENS_HOME/docs``): the catalog half of the site describes the
tables of one warehouse, so it lives with that warehouse; and it keeps the docs of one warehouse from
overwriting the ``target/`` that builds of another are using.  Both ``index.html`` (needs the JSON
files beside it, i.e. ``stronglens docs --serve``) and ``static_index.html`` (everything embedded,
opens from disk) are written; dbt's page bundles its scripts and styles, so both work offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stronglens import paths

DOCS_DIRNAME = "docs"
#: The only interface the docs server listens on: the site is for the person at this machine.
SERVE_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: What `dbt docs generate --static` must leave behind for the site to be usable.
SITE_FILES = ("index.html", "static_index.html", "manifest.json", "catalog.json")


def docs_dir() -> Path:
    """Where the docs site is written: ``$STRONGLENS_HOME/docs``."""
    return paths.warehouse_home() / DOCS_DIRNAME


def _invoke(args: list[str]) -> bool:
    """Run one dbt command in-process against this project and profile; True on success."""
    from dbt.cli.main import dbtRunner

    from stronglens.extensions import install_extensions

    install_extensions()
    root = paths.project_root()
    result = dbtRunner().invoke([*args, "--project-dir", str(root), "--profiles-dir", str(root)])
    if result.exception is not None:
        print(f"stronglens: dbt {' '.join(args[:2])} failed: {result.exception}", file=sys.stderr)
    return bool(result.success)


def generate_docs(target: Path | None = None) -> Path:
    """``dbt docs generate --static`` into ``target`` (default :func:`docs_dir`); return the folder.

    The catalog is read from the warehouse in $STRONGLENS_HOME, so build first for column types and
    row counts; without a build the site still documents every node, just without a catalog.
    """
    out = target or docs_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not _invoke(["docs", "generate", "--static", "--target-path", str(out)]):
        raise RuntimeError(f"dbt docs generate failed (see the dbt log above); nothing usable in {out}")
    missing = [name for name in SITE_FILES if not (out / name).is_file()]
    if missing:
        raise RuntimeError(f"dbt docs generate left no {', '.join(missing)} in {out}")
    return out


def serve_docs(target: Path, port: int = DEFAULT_PORT) -> int:
    """Serve the generated site on http://127.0.0.1:<port>/ until interrupted; return an exit code."""
    print(f"Serving the dbt docs of {target} on http://{SERVE_HOST}:{port}/ (Ctrl-C to stop)")
    args = [
        "docs",
        "serve",
        "--host",
        SERVE_HOST,
        "--port",
        str(port),
        "--no-browser",
        "--target-path",
        str(target),
    ]
    return 0 if _invoke(args) else 1
