"""Quote values that reach SQL text: the one place paths, globs and vars are escaped.

Most values travel as bound parameters (``con.execute(sql, [value])``), but DuckDB accepts no
parameters where many warehouse values go -- ``ATTACH '<path>'``, ``INSTALL '<file>'``, options
such as ``DATA_PATH``, table functions in a dbt source (``read_parquet('<glob>')``).  A path with a
quote (``o'neil.csv``) pasted raw breaks the statement or, worse, changes it.  Python code quotes
through :func:`literal`; Jinja code through the ``sql_string`` macro (``macros/quoting.sql``), which
applies the same rule.
"""

from __future__ import annotations

import os


def literal(value: str | os.PathLike[str]) -> str:
    """``value`` as a single-quoted SQL string literal (quotes doubled, NUL rejected).

    >>> literal("o'neil.csv")
    "'o''neil.csv'"
    """
    text = os.fspath(value)
    if "\x00" in text:
        raise ValueError(f"a NUL character cannot appear in SQL text: {text!r}")
    return "'" + text.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (double quotes doubled)."""
    if "\x00" in name or not name:
        raise ValueError(f"not a usable SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'
