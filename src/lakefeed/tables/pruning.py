"""File skipping from column statistics (min, max, null count), exact under SQL semantics.

:func:`may_match` answers "can any row of a file whose columns have these statistics satisfy
the filter?". It says no only when that is certain, so skipping a file never loses a row; the
exact filter is applied to whatever is read. :func:`all_match` answers the converse, "does every
row satisfy it?", yes only when that is certain: such row groups are read without the filter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from lakefeed.expr import (
    And,
    Between,
    Compare,
    Expr,
    IsIn,
    IsNull,
    Not,
    Or,
    columns_of,
    negation_normal_form,
    to_pyarrow,
)
from lakefeed.expr_literals import is_nan, normalize_literals

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakefeed.tables.base import ReadPlan

__all__ = ["ColumnStats", "all_match", "dataset_filter", "may_match", "provable_columns", "usable_for_pruning"]


@dataclass(frozen=True)
class ColumnStats:
    """A column's statistics in one file; ``None`` where unknown."""

    min: Any = None
    max: Any = None
    null_count: int | None = None


def usable_for_pruning(arrow_type: pa.DataType) -> bool:
    """Types whose min/max statistics are exact: integers, floats and dates.

    Strings are left out (Delta and Parquet writers may truncate their statistics), and so are
    timestamps (Delta stores them in milliseconds, so the maximum can be below the true one).
    """
    import pyarrow as pa

    return bool(pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_date(arrow_type))


def _comparable(value: Any, bound: Any) -> bool:
    if isinstance(value, bool) or isinstance(bound, bool):
        return False
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(bound, numbers):
        return not is_nan(value) and not (is_nan(bound))
    return (
        isinstance(value, date)
        and isinstance(bound, date)
        and not isinstance(value, datetime)
        and not isinstance(bound, datetime)
    )


def may_match(expr: Expr | None, stats: dict[str, ColumnStats], num_rows: int, schema: pa.Schema) -> bool:
    """Whether some row of a file with these statistics might satisfy ``expr``.

    Args:
        expr: The filter.
        stats: Statistics of the columns that have usable ones (see :func:`usable_for_pruning`).
        num_rows: Rows in the file.
        schema: The table schema (float columns keep negations as they are: ``NaN``).

    Returns:
        False only if no row can match.

    Example:
        >>> import pyarrow as pa
        >>> from lakefeed.expr import col
        >>> s = {"x": ColumnStats(min=10, max=20, null_count=0)}
        >>> schema = pa.schema([("x", pa.int64())])
        >>> may_match(col("x") > 25, s, 100, schema), may_match(col("x").between(15, 30), s, 100, schema)
        (False, True)
    """
    if expr is None or num_rows == 0:
        return num_rows > 0

    def bounds(column: str) -> tuple[Any, Any, int | None] | None:
        s = stats.get(column)
        return None if s is None else (s.min, s.max, s.null_count)

    def all_null(column: str) -> bool:
        b = bounds(column)
        return b is not None and b[2] is not None and b[2] >= num_rows

    def compare(column: str, op: str, value: Any) -> bool:
        if all_null(column):
            return False
        b = bounds(column)
        if b is None:
            return True
        lo, hi, _ = b
        if op in {"==", "<", "<="} and not _comparable(value, lo):
            return True
        if op in {"==", ">", ">="} and not _comparable(value, hi):
            return True
        if op == "==":
            return bool(lo <= value <= hi)
        if op == "<":
            return bool(lo < value)
        if op == "<=":
            return bool(lo <= value)
        if op == ">":
            return bool(hi > value)
        if op == ">=":
            return bool(hi >= value)
        return True  # "!=": only a file holding nothing but that value could be skipped; not worth it

    def some_null(column: str) -> bool:
        b = bounds(column)
        return b is None or b[2] is None or b[2] > 0

    # other negated leaves: unknown, so maybe
    return _walk(_prepared(expr, schema), compare, some_null, lambda c: not all_null(c), unknown=True)


def _provable_type(t: pa.DataType) -> bool:
    """Types :func:`all_match` trusts statistics of: exact, and without NaN."""
    import pyarrow as pa

    return bool(pa.types.is_signed_integer(t) or pa.types.is_date32(t))


def provable_columns(plan: ReadPlan) -> list[str]:
    """The filter's columns whose statistics :func:`all_match` can use (signed integers and dates)."""
    schema = plan.table_schema
    return [c for c in plan.filter_columns if c in schema.names and _provable_type(schema.field(c).type)]


def all_match(expr: Expr | None, stats: dict[str, ColumnStats], num_rows: int, schema: pa.Schema) -> bool:
    """Whether every row of a file (or row group) with these statistics satisfies ``expr``, for certain.

    Only signed integer and date columns count (exact statistics, no NaN), and only without
    nulls (a null compares as unknown, which a filter drops); anything else is "not certain".

    Args:
        expr: The filter.
        stats: Statistics of the columns (min, max and null count all known where used).
        num_rows: Rows in the file or row group.
        schema: The table schema.

    Example:
        >>> import pyarrow as pa
        >>> from lakefeed.expr import col
        >>> s = {"x": ColumnStats(min=10, max=20, null_count=0)}
        >>> schema = pa.schema([("x", pa.int64())])
        >>> all_match(col("x") >= 10, s, 100, schema), all_match(col("x") > 10, s, 100, schema)
        (True, False)
    """
    if expr is None or num_rows == 0:
        return True

    def exact(column: str) -> tuple[Any, Any] | None:
        s = stats.get(column)
        if s is None or s.null_count != 0 or s.min is None or s.max is None or column not in schema.names:
            return None
        if not _provable_type(schema.field(column).type):
            return None
        return s.min, s.max

    def compare(column: str, op: str, value: Any) -> bool:
        b = exact(column)
        if b is None:
            return False
        lo, hi = b
        if not (_comparable(value, lo) and _comparable(value, hi)):
            return False
        if op == "==":
            return bool(lo == hi == value)
        if op == "!=":
            return bool(value < lo or value > hi)
        if op == "<":
            return bool(hi < value)
        if op == "<=":
            return bool(hi <= value)
        if op == ">":
            return bool(lo > value)
        if op == ">=":
            return bool(lo >= value)
        return False

    def every_null(column: str) -> bool:
        s = stats.get(column)
        return s is not None and s.null_count is not None and s.null_count >= num_rows

    def no_null(column: str) -> bool:
        s = stats.get(column)
        return s is not None and s.null_count == 0

    return _walk(_prepared(expr, schema), compare, every_null, no_null, unknown=False)


def _walk(
    e: Expr,
    compare: Callable[[str, str, Any], bool],
    is_null: Callable[[str], bool],
    not_null: Callable[[str], bool],
    *,
    unknown: bool,
) -> bool:
    """Evaluate a filter in negation normal form over per-leaf answers (AND and OR of booleans)."""
    if isinstance(e, Compare):
        return compare(e.column, e.op, e.value)
    if isinstance(e, IsIn):
        return any(compare(e.column, "==", v) for v in e.values)
    if isinstance(e, Between):
        return compare(e.column, ">=", e.low) and compare(e.column, "<=", e.high)
    if isinstance(e, IsNull):
        return is_null(e.column)
    if isinstance(e, Not) and isinstance(e.operand, IsNull):
        return not_null(e.operand.column)
    if isinstance(e, And):
        return _walk(e.left, compare, is_null, not_null, unknown=unknown) and _walk(
            e.right, compare, is_null, not_null, unknown=unknown
        )
    if isinstance(e, Or):
        return _walk(e.left, compare, is_null, not_null, unknown=unknown) or _walk(
            e.right, compare, is_null, not_null, unknown=unknown
        )
    return unknown


@functools.lru_cache(maxsize=64)
def _prepared(expr: Expr, schema: pa.Schema) -> Expr:
    """``expr`` with literals in their columns' terms and negations pushed down: once per scan, not per file."""
    import pyarrow as pa

    nan_columns = [f.name for f in schema if pa.types.is_floating(f.type)]
    return negation_normal_form(normalize_literals(expr, schema), nan_columns=nan_columns)


def _nan_sensitive(e: Expr, float_columns: frozenset[str]) -> bool:
    """Whether a leaf of a negation normal form can be true on NaN (which statistics leave out)."""
    if isinstance(e, Not):
        return not isinstance(e.operand, IsNull) and bool(float_columns.intersection(columns_of(e)))
    if isinstance(e, Compare):
        return e.column in float_columns and e.op == "!="
    if isinstance(e, IsIn):
        return e.column in float_columns and any(is_nan(v) for v in e.values)
    return False


def dataset_filter(expr: Expr | None, schema: pa.Schema) -> pc.Expression | None:
    """A filter ``pyarrow.dataset`` may prune row groups with, where the exact filter is unsafe; else None.

    Parquet min/max statistics leave NaN out and ``pyarrow.dataset`` trusts them, so a filter
    that is true on NaN (``f != 2.0``, ``~(f <= 2.0)``, ``~f.isin([...])``) would lose the
    NaN rows of a row group whose other values all fail it. Such leaves become true here (a
    superset: the caller applies the exact filter to what is read); None means the exact
    filter itself is safe to hand over (no float column is tested that way).

    Example:
        >>> import pyarrow as pa
        >>> from lakefeed.expr import col
        >>> s = pa.schema([("i", pa.int64()), ("f", pa.float64())])
        >>> dataset_filter((col("i") > 1) & (col("f") > 0.5), s) is None
        True
        >>> print(dataset_filter((col("i") > 1) & (col("f") != 0.5), s))
        ((i > 1) and true)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if expr is None:
        return None
    floats = frozenset(f.name for f in schema if pa.types.is_floating(f.type)).intersection(columns_of(expr))
    if not floats:
        return None
    unsafe = False

    def go(e: Expr) -> pc.Expression:
        nonlocal unsafe
        if isinstance(e, And):
            return go(e.left) & go(e.right)
        if isinstance(e, Or):
            return go(e.left) | go(e.right)
        if _nan_sensitive(e, floats):
            unsafe = True
            return pc.scalar(True)
        return to_pyarrow(e, schema)

    pushed = go(negation_normal_form(normalize_literals(expr, schema), nan_columns=floats))
    return pushed if unsafe else None
