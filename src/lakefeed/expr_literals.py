"""Literals in their column's own terms: one rewrite the exact filter, pruning and Iceberg share.

:func:`normalize_literals` rounds float literals to a float32 column's width, turns an integer
column compared with a fraction or an out-of-range number into an exact integer comparison (or
a test that is true, or false, on every non-null value), and puts decimal literals at the
column's scale (adjusting the operator when that is not exact), so that every form of a filter
(``to_pyarrow``, lakefeed's pruning, the Iceberg expression) agrees on every row.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING

from lakefeed._typing import Scalar
from lakefeed.expr import And, Between, Compare, CompareOp, Expr, IsIn, Not, Or

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["is_nan", "normalize_literals"]


def _no_row(column: str) -> Expr:
    """False on every non-null value, null on nulls (``column IN ()``)."""
    return IsIn(column, ())


def _every_row(column: str) -> Expr:
    """True on every non-null value, null on nulls."""
    return Not(IsIn(column, ()))


def _round_float(value: Scalar, bits: int) -> Scalar:
    import numpy as np

    if not isinstance(value, (int, float, Decimal)) or isinstance(value, bool):
        return value
    try:
        wide = float(value)
    except OverflowError:
        wide = math.inf if value > 0 else -math.inf
    if bits >= 64 or math.isnan(wide):
        return wide
    with np.errstate(over="ignore"):
        return float(np.float32(wide) if bits == 32 else np.float16(wide))


def _exact_units(value: Scalar, scale: int) -> Fraction | float | None:
    """``value * 10**scale`` as an exact fraction; a float NaN/inf as itself; None if not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return value
    if isinstance(value, Decimal) and not value.is_finite():
        return math.nan if value.is_nan() else (math.inf if value > 0 else -math.inf)
    units: Fraction = Fraction(value) * 10**scale
    return units


def _integer_compare(op: CompareOp, units: Fraction | float, lo: int, hi: int) -> tuple[CompareOp, int] | bool:
    """``x <op> units`` for integers ``lo <= x <= hi`` as an integer comparison, or a constant."""
    if isinstance(units, float):  # NaN: only != holds; +-inf: beyond every value
        if math.isnan(units):
            return op == "!="
        units = Fraction(hi + 1 if units > 0 else lo - 1)
    if units.denominator != 1:
        if op in {"==", "!="}:
            return op == "!="
        op, bound = ("<=", math.floor(units)) if op in {"<", "<="} else (">=", math.ceil(units))
    else:
        bound = int(units)
    if bound > hi or bound < lo:
        above = bound > hi
        return {"==": False, "!=": True, "<": above, "<=": above, ">": not above, ">=": not above}[op]
    return op, bound


def normalize_literals(expr: Expr, schema: pa.Schema) -> Expr:
    """The same filter with each numeric literal stated in its column's own terms.

    The exact filter (:func:`to_pyarrow`) and every pruning translation evaluate this form,
    so they agree on every value:

    * integer and decimal columns compare with an int or Decimal literal exactly, as numbers
      (``i <= 6.5`` is ``i <= 6``, ``i == 6.5`` matches no row, ``d > 1.005`` on a
      ``decimal(10, 2)`` is ``d >= 1.01``); a literal beyond the column's range makes the
      comparison true, or false, on every non-null value; an IN list keeps the values the
      column can hold. A float literal on a decimal column is left as it is (float compare).
    * float columns round the literal to the column's width (a ``float32`` column compares
      with the ``float32`` nearest the literal); a comparison with NaN is false (``!=`` true);
      ``IN`` matches NaN with NaN (Arrow's ``is_in``) and -0.0 with 0.0 (as ``==`` does).

    Nulls stay null throughout.

    Example:
        >>> import pyarrow as pa
        >>> from lakefeed.expr import col
        >>> s = pa.schema([("i", pa.int32())])
        >>> print(normalize_literals((col("i") <= 6.5) | (col("i") > 2.0**40) | col("i").isin([1, 1.5]), s))
        (((i <= 6) | (i IN ())) | (i IN (1)))
    """
    import pyarrow as pa

    def kind(column: str) -> tuple[str, int, int, int]:
        if column not in schema.names:
            return ("other", 0, 0, 0)
        t = schema.field(column).type
        t = t.value_type if pa.types.is_dictionary(t) else t
        if pa.types.is_integer(t):
            bits = t.bit_width
            if pa.types.is_unsigned_integer(t):
                return ("int", 0, 0, (1 << bits) - 1)
            return ("int", 0, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        if pa.types.is_decimal(t):
            return ("decimal", t.scale, -(10**t.precision - 1), 10**t.precision - 1)
        if pa.types.is_floating(t):
            return ("float", t.bit_width, 0, 0)
        return ("other", 0, 0, 0)

    def literal(units: int, how: str, scale: int) -> Scalar:
        if how == "int":
            return units
        digits = Decimal(units).as_tuple()
        return Decimal((digits.sign, digits.digits, -scale))

    def compare(column: str, op: CompareOp, value: Scalar) -> Expr | None:
        """The normalized comparison; None when it stays as it is."""
        how, scale, lo, hi = kind(column)
        if how == "float":
            rounded = _round_float(value, scale)
            if is_nan(rounded):
                return _every_row(column) if op == "!=" else _no_row(column)
            return (
                None
                if rounded is value or (type(rounded) is type(value) and rounded == value)
                else (Compare(column, op, rounded))
            )
        if how == "other" or (how == "decimal" and isinstance(value, float)):
            return None
        units = _exact_units(value, scale)
        if units is None:
            return None
        result = _integer_compare(op, units, lo, hi)
        if isinstance(result, bool):
            return _every_row(column) if result else _no_row(column)
        new_op, bound = result
        new_value = literal(bound, how, scale)
        if new_op == op and type(new_value) is type(value) and new_value == value and str(new_value) == str(value):
            return None
        return Compare(column, new_op, new_value)

    def member(column: str, value: Scalar) -> list[Scalar]:
        """What ``value`` becomes in an IN list: [] when the column cannot hold it."""
        how, scale, lo, hi = kind(column)
        if how == "float":  # Arrow's is_in tells -0.0 from 0.0, == does not: list both
            rounded = _round_float(value, scale)
            return [rounded, -rounded] if isinstance(rounded, float) and rounded == 0 else [rounded]
        if how == "other" or (how == "decimal" and isinstance(value, float)):
            return [value]
        units = _exact_units(value, scale)
        if units is None:
            return [value]
        if isinstance(units, float) or units.denominator != 1 or not lo <= int(units) <= hi:
            return []
        return [literal(int(units), how, scale)]

    def go(e: Expr) -> Expr:
        if isinstance(e, Compare):
            changed = compare(e.column, e.op, e.value)
            return e if changed is None else changed
        if isinstance(e, IsIn):
            values = tuple(v for old in e.values for v in member(e.column, old))
            same = len(values) == len(e.values) and all(
                type(a) is type(b) and str(a) == str(b) for a, b in zip(values, e.values, strict=True)
            )
            return e if same else IsIn(e.column, values)
        if isinstance(e, Between):
            low, high = compare(e.column, ">=", e.low), compare(e.column, "<=", e.high)
            if low is None and high is None:
                return e
            low = Compare(e.column, ">=", e.low) if low is None else low
            high = Compare(e.column, "<=", e.high) if high is None else high
            if isinstance(low, Compare) and isinstance(high, Compare) and low.op == ">=" and high.op == "<=":
                return Between(e.column, low.value, high.value)
            return And(low, high)
        if isinstance(e, (And, Or)):
            left, right = go(e.left), go(e.right)
            return e if left is e.left and right is e.right else type(e)(left, right)
        if isinstance(e, Not):
            operand = go(e.operand)
            return e if operand is e.operand else Not(operand)
        return e

    return go(expr)


def is_nan(value: object) -> bool:
    """Whether a literal is a float NaN.

    Example:
        >>> is_nan(float("nan")), is_nan(1.0), is_nan("nan")
        (True, False, False)
    """
    return isinstance(value, float) and math.isnan(value)
