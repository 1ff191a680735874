"""Render the project's pure-Jinja SQL macros outside dbt, so tests can run them in DuckDB.

The geometry macros (HEALPix, zones crossmatch, hashes) deliberately use plain Jinja only -- no
``var()``, ``ref()`` or ``adapter`` -- so they can be exercised against references (healpy,
astropy) on millions of rows without a dbt project run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

MACRO_DIR = Path(__file__).resolve().parents[1] / "macros"


def load_macros(*files: str) -> Any:
    """Return a namespace whose attributes are the macros defined in ``macros/<files>``.

    All files are concatenated into one template so macros may call one another, as in dbt.
    """
    source = "\n".join((MACRO_DIR / f).read_text() for f in files)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
    return env.from_string(source).module


def render(macro_namespace: Any, name: str, *args: Any, **kwargs: Any) -> str:
    """Call one macro and return its SQL text, stripped."""
    return str(getattr(macro_namespace, name)(*args, **kwargs)).strip()
