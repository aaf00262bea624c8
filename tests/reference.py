"""An independent reference for filters: pandas nullable arrays with SQL (Kleene) logic."""

from __future__ import annotations

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
