"""An independent reference for filters: pandas nullable arrays with SQL (Kleene) logic."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa

from lakefeed.expr import And, Between, Compare, Expr, IsIn, IsNull, Not, Or

_DTYPES = {
    pa.int64(): "Int64",
    pa.int32(): "Int32",
    pa.float64(): "Float64",
    pa.string(): "string",
    pa.bool_(): "boolean",
}


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Columns as pandas nullable arrays built from Python values (no Arrow compute involved)."""
    columns = {}
    for field in table.schema:
        values = table.column(field.name).to_pylist()
        dtype = _DTYPES.get(field.type)
        if dtype is not None:
            columns[field.name] = pd.array(values, dtype=dtype)
        else:  # dates and timestamps: object arrays of Python values
            columns[field.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def _masked(series: pd.Series, result: object) -> pd.Series:
    out = pd.Series(pd.array(list(pd.Series(result).astype(bool)), dtype="boolean"), index=series.index)
    out[series.isna()] = pd.NA
    return out


def _compare(series: pd.Series, op: str, value: object) -> pd.Series:
    if series.dtype == object:
        valid = series.notna()
        raw = [False if v is None else _py_op(op, v, value) for v in series]
        return _masked(series, pd.Series(raw, index=series.index) & valid)
    ops = {
        "==": series.__eq__,
        "!=": series.__ne__,
        "<": series.__lt__,
        "<=": series.__le__,
        ">": series.__gt__,
        ">=": series.__ge__,
    }
    return _masked(series, ops[op](value).fillna(False))


def _py_op(op: str, a: object, b: object) -> bool:
    return {
        "==": lambda: a == b,
        "!=": lambda: a != b,
        "<": lambda: a < b,  # type: ignore[operator]
        "<=": lambda: a <= b,  # type: ignore[operator]
        ">": lambda: a > b,  # type: ignore[operator]
        ">=": lambda: a >= b,  # type: ignore[operator]
    }[op]()


def evaluate(expr: Expr, frame: pd.DataFrame) -> pd.Series:
    """The filter's three-valued result for each row (a pandas "boolean" Series with NA)."""
    if isinstance(expr, Compare):
        return _compare(frame[expr.column], expr.op, expr.value)
    if isinstance(expr, IsIn):
        series = frame[expr.column]
        hits = pd.Series(False, index=series.index)
        for v in expr.values:
            hits = hits | _compare(series, "==", v).fillna(False).astype(bool)
        return _masked(series, hits)
    if isinstance(expr, IsNull):
        return pd.Series(pd.array(list(frame[expr.column].isna()), dtype="boolean"), index=frame.index)
    if isinstance(expr, Between):
        series = frame[expr.column]
        return _compare(series, ">=", expr.low) & _compare(series, "<=", expr.high)
    if isinstance(expr, And):
        return evaluate(expr.left, frame) & evaluate(expr.right, frame)
    if isinstance(expr, Or):
        return evaluate(expr.left, frame) | evaluate(expr.right, frame)
    if isinstance(expr, Not):
        return ~evaluate(expr.operand, frame)
    raise TypeError(expr)


def reference_filter(table: pa.Table, expr: Expr | None) -> pa.Table:
    """The rows of ``table`` where ``expr`` is true, computed with pandas."""
    if expr is None:
        return table
    keep = evaluate(expr, to_frame(table)).fillna(False).astype(bool).to_numpy()
    return table.filter(pa.array(keep))


def _round_to(value: object, bits: int) -> float:
    """A number as the nearest float of ``bits`` width (what a float column compares with)."""
    import struct

    wide = float(value)  # type: ignore[arg-type]
    if bits == 32 and math.isfinite(wide):
        return float(struct.unpack("f", struct.pack("f", wide))[0])
    return wide


def _python_compare(op: str, x: object, v: object, bits: int | None) -> bool:
    """``x <op> v`` as Python numbers compare (exactly, int vs float vs Decimal); floats columns
    first round ``v`` to their width. NaN: only ``!=`` holds."""
    if bits is not None:
        v = _round_to(v, bits)
    return _py_op(op, x, v)


def python_truth(expr: Expr, row: dict[str, object], float_bits: dict[str, int]) -> bool | None:
    """Three-valued truth of ``expr`` on one row, by plain Python comparisons (no Arrow).

    ``float_bits`` gives the width of each float column; other numeric columns compare with
    the literal exactly, as Python compares an int, a float and a Decimal.
    """
    if isinstance(expr, Compare):
        x = row[expr.column]
        return None if x is None else _python_compare(expr.op, x, expr.value, float_bits.get(expr.column))
    if isinstance(expr, IsIn):
        x = row[expr.column]
        if x is None:
            return None
        bits = float_bits.get(expr.column)
        for v in expr.values:
            if bits is not None and isinstance(x, float) and math.isnan(x) and math.isnan(_round_to(v, bits)):
                return True  # Arrow's is_in matches NaN with NaN
            if _python_compare("==", x, v, bits):
                return True
        return False
    if isinstance(expr, IsNull):
        return row[expr.column] is None
    if isinstance(expr, Between):
        return python_truth(
            And(Compare(expr.column, ">=", expr.low), Compare(expr.column, "<=", expr.high)), row, float_bits
        )
    if isinstance(expr, Not):
        inner = python_truth(expr.operand, row, float_bits)
        return None if inner is None else not inner
    if isinstance(expr, (And, Or)):
        left = python_truth(expr.left, row, float_bits)
        right = python_truth(expr.right, row, float_bits)
        if isinstance(expr, And):
            if left is False or right is False:
                return False
            return None if left is None or right is None else True
        if left is True or right is True:
            return True
        return None if left is None or right is None else False
    raise TypeError(expr)


def python_filter_ids(table: pa.Table, expr: Expr, key: str = "id") -> list[object]:
    """The ``key`` values of the rows where ``expr`` is true, by :func:`python_truth`, sorted."""
    bits = {f.name: f.type.bit_width for f in table.schema if pa.types.is_floating(f.type)}
    return sorted(row[key] for row in table.to_pylist() if python_truth(expr, row, bits) is True)
