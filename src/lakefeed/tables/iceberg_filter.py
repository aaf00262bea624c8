"""lakefeed filters as pyiceberg expressions: a pruning superset for reads, the exact rows for writes.

Both start from :func:`~lakefeed.expr_literals.normalize_literals`, so each literal is already in its
column's terms (ints for integer columns, Decimals at the column's scale, floats rounded to
the column's width, no NaN literal in a comparison).

Reads (``exact=False``) may select more rows than the filter, never fewer: a leaf pyiceberg
cannot state exactly becomes ``AlwaysTrue`` and lakefeed applies the exact filter afterwards.

Writes (``exact=True``, deletes and overwrites) must select exactly the rows where the
filter is true. pyiceberg's delete keeps a row where the expression is not true, but treats
NaN like null (a float column its expression never tests with ``IsNaN``/``NotNaN`` keeps its
NaN rows) and skips whole files from NaN-blind statistics. So the write form is two-valued:
every leaf is guarded by ``NotNull`` and, on float columns, says with ``IsNaN``/``NotNaN``
what a NaN does (``f != 1.0`` is true on NaN, ``f > 1.0`` false), and negations are pushed
to the leaves as "the operand is false". pyiceberg then evaluates exactly lakefeed's rows.

Both forms state a comparison of a ``float`` (32-bit) column with an infinity as one with the
largest finite ``float`` (``g == inf`` is ``g > 3.4028235e38``): pyiceberg binds an infinite
literal to a ``float`` column as beyond the type's range, which makes ``g == inf`` false and
``g != inf`` true on every row, though the column can hold infinities.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lakefeed.errors import ConfigError, FilterTypeError, UnsupportedOperationError
from lakefeed.expr import (
    And,
    Between,
    Compare,
    Expr,
    IsIn,
    IsNull,
    Not,
    Or,
    negation_normal_form,
    validate,
)
from lakefeed.expr_literals import is_nan, normalize_literals

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.expressions import BooleanExpression

__all__ = ["to_iceberg_filter"]

_NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
FLOAT32_MAX = 3.4028234663852886e38
"""The largest finite ``float32``: above it a ``float`` column holds only +inf."""
# ``float`` column <op> +inf on non-NaN values: the same column compared with FLOAT32_MAX by
# this operator, or a constant; -inf mirrors it against -FLOAT32_MAX
_PAST_MAX: dict[str, str | bool] = {"==": ">", "!=": "<=", "<": "<=", "<=": True, ">": False, ">=": ">"}
_PAST_MIN: dict[str, str | bool] = {"==": "<", "!=": ">=", "<": False, "<=": "<", ">": ">=", ">=": True}


def _iceberg_literal(value: Any, column: str, arrow_type: pa.DataType, *, exact: bool) -> Any:
    """The value pyiceberg should compare ``column`` with (after ``normalize_literals``), or None when it cannot."""
    import pyarrow as pa

    number = isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    if pa.types.is_integer(arrow_type):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif pa.types.is_floating(arrow_type):
        if number and not is_nan(value):
            return float(value)
    elif pa.types.is_decimal(arrow_type):
        if isinstance(value, Decimal) and value.is_finite():
            return value
        if isinstance(value, float) and exact:  # compared as floats: no decimal literal is exact
            msg = (
                f"a write filter (delete or overwrite) compares column {column!r} ({arrow_type}) with the float "
                f"{value!r}, which pyiceberg compares as a float, not exactly; use a Decimal literal such as "
                f"Decimal({str(value)!r})"
            )
            raise FilterTypeError(msg)
    elif pa.types.is_timestamp(arrow_type) and isinstance(value, datetime):
        if (arrow_type.tz is None) == (value.tzinfo is None):
            return value.isoformat()
        if exact:
            msg = (
                f"a write filter (delete or overwrite) compares column {column!r} ({arrow_type}) with the "
                f"{'aware' if value.tzinfo else 'naive'} datetime {value!r}; use "
                + (
                    "a naive datetime, like the column's values (e.g. value.replace(tzinfo=None))"
                    if arrow_type.tz is None
                    else "an aware datetime (e.g. value.replace(tzinfo=timezone.utc))"
                )
            )
            raise FilterTypeError(msg)
        return None
    elif pa.types.is_date(arrow_type) and isinstance(value, date):
        return value.isoformat()
    elif isinstance(value, (bool, str)):
        return value
    if exact:
        msg = (
            f"a write filter (delete or overwrite) on column {column!r} ({arrow_type}) compares it with "
            f"{type(value).__name__} {value!r}, which Iceberg cannot evaluate exactly; select the rows by "
            "other columns (keys, times, strings or numbers)"
        )
        raise UnsupportedOperationError(msg)
    return None


def to_iceberg_filter(expr: Expr | None, schema: pa.Schema, *, exact: bool = False) -> BooleanExpression:
    """Translate a lakefeed filter into a pyiceberg expression.

    With ``exact=False`` (reads) the result selects a superset of the rows, for pruning only:
    leaves pyiceberg cannot express become ``AlwaysTrue``. With ``exact=True`` (deletes and
    overwrites) pyiceberg's delete evaluates it to exactly the rows where the filter is true
    (NaN and nulls included, see the module docstring), or an error is raised.

    Example:
        >>> import pyarrow as pa, lakefeed as lf
        >>> to_iceberg_filter(lf.col("a") > 1, pa.schema([("a", pa.int64())]))
        GreaterThan(term=Reference(name='a'), literal=LongLiteral(1))
    """
    import pyarrow as pa
    from pyiceberg import expressions

    ie: Any = expressions  # pydantic-built constructors confuse type checkers
    if expr is None:
        always: BooleanExpression = ie.AlwaysTrue()
        return always
    validate(expr, schema)
    floats = frozenset(f.name for f in schema if pa.types.is_floating(f.type))
    normalized = normalize_literals(expr, schema)
    ops: dict[str, Callable[[str, Any], BooleanExpression]] = {
        "==": ie.EqualTo,
        "!=": ie.NotEqualTo,
        "<": ie.LessThan,
        "<=": ie.LessThanOrEqual,
        ">": ie.GreaterThan,
        ">=": ie.GreaterThanOrEqual,
    }

    narrow = frozenset(f.name for f in schema if pa.types.is_floating(f.type) and f.type.bit_width < 64)

    def lit(column: str, value: Any) -> Any:
        return _iceberg_literal(value, column, schema.field(column).type, exact=exact)

    def compare(op: str, column: str, value: Any) -> Any:
        """``column op value`` on non-null, non-NaN values (an infinity on a ``float`` column restated)."""
        if column in narrow and isinstance(value, float) and math.isinf(value):
            rule = (_PAST_MAX if value > 0 else _PAST_MIN)[op]
            if isinstance(rule, bool):
                return ie.AlwaysTrue() if rule else ie.AlwaysFalse()
            return ops[rule](column, math.copysign(FLOAT32_MAX, value))
        return ops[op](column, value)

    def prune(e: Expr) -> Any:
        """A superset of ``e``'s rows (``e`` in negation normal form)."""
        if isinstance(e, Compare):
            value = lit(e.column, e.value)
            if value is None or (e.op == "!=" and e.column in floats):  # NaN != x is true
                return ie.AlwaysTrue()
            return compare(e.op, e.column, value)
        if isinstance(e, IsIn):
            values = [lit(e.column, v) for v in e.values]
            if any(v is None for v in values):  # NaN in the list too: is_in matches NaN rows
                return ie.AlwaysTrue()
            infinite = [v for v in values if e.column in narrow and isinstance(v, float) and math.isinf(v)]
            finite = {v for v in values if v not in infinite}
            member: Any = ie.In(e.column, finite) if finite else ie.AlwaysFalse()
            for v in infinite:
                member = ie.Or(member, compare("==", e.column, v))
            return member
        if isinstance(e, IsNull):
            return ie.IsNull(e.column)
        if isinstance(e, Between):
            return ie.And(prune(Compare(e.column, ">=", e.low)), prune(Compare(e.column, "<=", e.high)))
        if isinstance(e, And):
            return ie.And(prune(e.left), prune(e.right))
        if isinstance(e, Or):
            return ie.Or(prune(e.left), prune(e.right))
        if isinstance(e, Not):
            operand = e.operand
            if isinstance(operand, IsNull) or (isinstance(operand, IsIn) and not operand.values):
                return ie.NotNull(operand.column)
            return ie.AlwaysTrue()  # other negated leaves: no safe pruning
        raise _unknown_node(e)

    def guarded(column: str, predicate: Any, *, nan: bool) -> Any:
        """``predicate`` on non-null values; on a float column NaN counts as ``nan``."""
        if column not in floats:
            return ie.And(ie.NotNull(column), predicate)
        on_nan = ie.Or(ie.IsNaN(column), predicate) if nan else ie.And(ie.NotNaN(column), predicate)
        return ie.And(ie.NotNull(column), on_nan)

    def holds(e: Expr, truth: bool) -> Any:
        """The rows where ``e`` is ``truth`` (true or false; never null)."""
        if isinstance(e, Not):
            return holds(e.operand, not truth)
        if isinstance(e, (And, Or)):
            left, right = holds(e.left, truth), holds(e.right, truth)
            return ie.And(left, right) if isinstance(e, And) == truth else ie.Or(left, right)
        if isinstance(e, IsNull):
            return ie.IsNull(e.column) if truth else ie.NotNull(e.column)
        if isinstance(e, Between):
            low, high = Compare(e.column, ">=", e.low), Compare(e.column, "<=", e.high)
            return holds(And(low, high), truth)
        if isinstance(e, Compare):
            op = e.op if truth else _NEGATE[e.op]
            return guarded(e.column, compare(op, e.column, lit(e.column, e.value)), nan=(e.op == "!=") == truth)
        if isinstance(e, IsIn):
            has_nan = any(is_nan(v) for v in e.values)
            values = {lit(e.column, v) for v in e.values if not is_nan(v)}
            member: Any = ie.AlwaysFalse() if truth else ie.AlwaysTrue()
            if e.column in floats:  # pyiceberg's In is Arrow's is_in, which tells -0.0 from 0.0
                for v in sorted(values):
                    member = (
                        ie.Or(member, compare("==", e.column, v))
                        if truth
                        else ie.And(member, compare("!=", e.column, v))
                    )
            elif values:
                member = ie.In(e.column, values) if truth else ie.NotIn(e.column, values)
            return guarded(e.column, member, nan=has_nan == truth)
        raise _unknown_node(e)

    if not exact:
        pruned: BooleanExpression = prune(negation_normal_form(normalized, nan_columns=floats))
        return pruned
    rows: BooleanExpression = holds(normalized, True)
    return _mention_nan(rows, floats)


def _unknown_node(e: Expr) -> ConfigError:
    """The error for a filter node lakefeed does not know (an ``Expr`` subclass of someone else's)."""
    # not str(e) or repr(e): both go through to_sql, whose own error on an unknown node repeats repr(e) endlessly
    column = getattr(e, "column", None)
    on = f"on column {column!r}" if isinstance(column, str) else "naming no column"
    msg = (
        f"cannot translate the filter node {type(e).__name__} ({on}) into an Iceberg filter; build filters "
        "from lf.col(...) comparisons, .isin(), .is_null() and .between(), combined with &, | and ~"
    )
    return ConfigError(msg)


def _mention_nan(expr: BooleanExpression, floats: frozenset[str]) -> BooleanExpression:
    """``expr`` with every float column it uses tested by ``IsNaN``/``NotNaN`` somewhere.

    pyiceberg's delete keeps the NaN rows of a float column the expression never tests for
    NaN (``f IS NULL`` alone, say), whatever the expression says about them; a test that is
    always true (null, NaN or not NaN) stops that without changing the rows.
    """
    from pyiceberg import expressions

    ie: Any = expressions
    used: set[str] = set()
    tested: set[str] = set()
    stack: list[Any] = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, (ie.And, ie.Or)):
            stack += [e.left, e.right]
        elif isinstance(e, ie.Not):
            stack.append(e.child)
        elif isinstance(e, ie.UnboundPredicate) and isinstance(e.term, ie.Reference):
            used.add(e.term.name)
            if isinstance(e, (ie.IsNaN, ie.NotNaN)):
                tested.add(e.term.name)
    out: Any = expr
    for name in sorted(used.intersection(floats) - tested):
        out = ie.And(out, ie.Or(ie.IsNull(name), ie.Or(ie.IsNaN(name), ie.NotNaN(name))))
    result: BooleanExpression = out
    return result
