"""Compare the marts of two engines row for row: the DuckDB (DuckLake) build and a dbt-spark build.

Why a module of its own: the Spark parity test (`make test-spark`) and anyone moving a build to a
cluster ask the same question -- did the other engine produce the same training set? Both sides are
read into Arrow, sorted by the mart's key, and compared column by column: keys and every integer,
text and boolean column exactly; floating-point columns (computed with the engines' own libm, so
trigonometry may differ in the last ulp) to a relative 1e-9. Each column also gets a checksum so a
report shows at a glance what was compared.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: The marts the training set is made of, with the key that orders each.
MART_KEYS: dict[str, tuple[str, ...]] = {
    "positives": ("candidate_id",),
    "negatives": ("galaxy_id",),
    "sampling_strata": ("stratum",),
    "n2_summary": ("split", "category"),
}

#: Relative tolerance for floating-point columns (see the module docstring).
FLOAT_RTOL = 1e-9


@dataclass(frozen=True)
class ColumnReport:
    """One column of one mart: its checksum on each side and whether the values agree."""

    table: str
    column: str
    checksum_a: str
    checksum_b: str
    equal: bool
    detail: str = ""


def spark_table_files(spark_warehouse: str | os.PathLike[str], table: str, schema: str = "main") -> str:
    """The Parquet glob of a dbt-spark table under its warehouse folder (spark.sql.warehouse.dir)."""
    folder = Path(spark_warehouse) / f"{schema}.db" / table
    if not glob.glob(str(folder / "*.parquet")):
        raise FileNotFoundError(f"no Parquet files for Spark table {schema}.{table} under {folder}")
    return str(folder / "*.parquet")


def read_spark_table(spark_warehouse: str | os.PathLike[str], table: str, schema: str = "main") -> pa.Table:
    """A dbt-spark table, read from its Parquet files (no Spark session needed)."""
    con = duckdb.connect()
    try:
        return con.execute(
            f"select * from read_parquet('{spark_table_files(spark_warehouse, table, schema)}')"
        ).fetch_arrow_table()
    finally:
        con.close()


def _checksum(column: pa.ChunkedArray) -> str:
    """Order-independent summary: count, nulls and a sum (rounded for floats) or a hash sum."""
    n, nulls = len(column), column.null_count
    if pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(float)
        finite = values[np.isfinite(values)]
        return f"n={n} nulls={nulls} sum={float(np.sum(finite)):.9g}"
    if pa.types.is_integer(column.type) or pa.types.is_boolean(column.type):
        total = pc.sum(pc.cast(column, pa.int64())).as_py()
        return f"n={n} nulls={nulls} sum={total}"
    hashed = pc.sum(pc.cast(pc.binary_length(pc.cast(column, pa.string())), pa.int64())).as_py()
    distinct = len(pc.unique(column))
    return f"n={n} nulls={nulls} chars={hashed} distinct={distinct}"


def _sorted(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in keys])


def _same_values(a: pa.ChunkedArray, b: pa.ChunkedArray) -> tuple[bool, str]:
    """Exact equality, or equality to FLOAT_RTOL when either side is floating point."""
    if pa.types.is_floating(a.type) or pa.types.is_floating(b.type):
        x = a.to_numpy(zero_copy_only=False).astype(float)
        y = b.to_numpy(zero_copy_only=False).astype(float)
        both_nan = np.isnan(x) & np.isnan(y)
        close = np.isclose(x, y, rtol=FLOAT_RTOL, atol=0.0) | both_nan
        if close.all():
            return True, ""
        i = int(np.flatnonzero(~close)[0])
        return False, f"{int((~close).sum())} rows differ, first at sorted row {i + 1}: {x[i]!r} vs {y[i]!r}"
    x, y = a.to_pylist(), b.to_pylist()
    bad = [i for i, (u, v) in enumerate(zip(x, y, strict=True)) if u != v]
    if not bad:
        return True, ""
    return False, f"{len(bad)} rows differ, first at sorted row {bad[0] + 1}: {x[bad[0]]!r} vs {y[bad[0]]!r}"


def compare_tables(table: str, a: pa.Table, b: pa.Table, keys: tuple[str, ...]) -> list[ColumnReport]:
    """Compare two versions of one mart; one report per column of ``a`` (a column missing in ``b``
    is a difference)."""
    reports = []
    if a.num_rows != b.num_rows:
        return [
            ColumnReport(table, "*", f"rows={a.num_rows}", f"rows={b.num_rows}", False, "row counts differ")
        ]
    a, b = _sorted(a, keys), _sorted(b, keys)
    for name in a.column_names:
        if name not in b.column_names:
            reports.append(ColumnReport(table, name, _checksum(a[name]), "missing", False, "column missing"))
            continue
        equal, detail = _same_values(a[name], b[name])
        reports.append(ColumnReport(table, name, _checksum(a[name]), _checksum(b[name]), equal, detail))
    return reports


def format_reports(reports: list[ColumnReport]) -> str:
    """A plain-text table of the reports, differences first."""
    lines = []
    for r in sorted(reports, key=lambda r: (r.equal, r.table, r.column)):
        mark = "ok  " if r.equal else "DIFF"
        lines.append(f"{mark} {r.table}.{r.column}: {r.checksum_a} | {r.checksum_b} {r.detail}".rstrip())
    return "\n".join(lines)
