"""Render the project's SQL macros outside dbt, so tests can run them in DuckDB.

The geometry and hashing macros use plain Jinja plus two dbt idioms -- ``adapter.dispatch`` and
``return`` -- which this renderer emulates (dispatch resolves to the ``default__`` implementation).
That lets tests check them against references (healpy, astropy, hashlib) on millions of rows
without a dbt project run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

MACRO_DIR = Path(__file__).resolve().parents[1] / "macros"


class _Adapter:
    """Stands in for dbt's ``adapter``: dispatch picks ``default__<name>`` from the loaded macros."""

    def __init__(self) -> None:
        self.module: Any = None

    def dispatch(self, name: str, package: str | None = None) -> Any:
        return getattr(self.module, f"default__{name}", None) or getattr(self.module, name)


class _CompilerError(Exception):
    """Raised where dbt would raise a compilation error."""


class _Exceptions:
    @staticmethod
    def raise_compiler_error(message: str) -> None:
        raise _CompilerError(message)


CompilerError = _CompilerError


def load_macros(*files: str) -> Any:
    """Return a namespace whose attributes are the macros defined in ``macros/<files>``.

    All files are concatenated into one template so macros may call one another, as in dbt.
    """
    source = "\n".join((MACRO_DIR / f).read_text() for f in files)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
    adapter = _Adapter()
    env.globals.update(adapter=adapter, exceptions=_Exceptions(), **{"return": lambda value: value})
    module = env.from_string(source).module
    adapter.module = module
    return module


def render(macro_namespace: Any, name: str, *args: Any, **kwargs: Any) -> str:
    """Call one macro and return its SQL text, stripped."""
    return str(getattr(macro_namespace, name)(*args, **kwargs)).strip()
