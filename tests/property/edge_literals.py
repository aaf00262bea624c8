"""Data and filters at the edges of numeric comparison: NaN, float32, huge and fractional literals on
integer columns, decimals at other scales. Shared by the filter and pruning property tests."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from lakefeed.expr import CompareOp, Expr, col

NAN = float("nan")
INF = float("inf")

EDGE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("i", pa.int32()),
        pa.field("j", pa.int64()),
        pa.field("f", pa.float64()),
        pa.field("g", pa.float32()),
        pa.field("p", pa.decimal128(10, 2)),
    ]
)

_POOLS: dict[str, list[Any]] = {
    "i": [-(2**31), 3, None, 6, 7, 2**31 - 1, 0, -1, 2],
    "j": [2**53 + 1, 2**53, None, -(2**63), 2**63 - 1, 1, 6, -7],
    "f": [2.0, NAN, None, 0.1, -0.0, INF, 1.5, 2.0, -3.25, NAN, 0.0],
    "g": [0.1, 0.5, NAN, None, 2.0, 1e-3, -1.5, 2.0, 16777217.0],
    "p": [Decimal("1.50"), Decimal("2.25"), None, Decimal("1.01"), Decimal("1.00"), Decimal("-3.33"), Decimal("2.00")],
}


def edge_data(n: int = 24) -> pa.Table:
    """``n`` rows cycling through the pools (of coprime-ish lengths, so the columns mix)."""
    columns: dict[str, Any] = {"id": list(range(n))}
    for name, pool in _POOLS.items():
        columns[name] = [pool[(k * 5 + len(name)) % len(pool)] for k in range(n)]
    return pa.table(columns, schema=EDGE_SCHEMA)


EDGE_DATA = edge_data()

_HUGE_INTS = [2**31, -(2**31) - 1, 2**53, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**30]
_ODD_FLOATS = [6.5, -0.5, 2.0**53, float(2**31), 1e10, -1e30, NAN, INF, -INF, 3.0, 0.1, -0.0]
_DECIMALS = [Decimal("2.5"), Decimal("3"), Decimal("3.000"), Decimal("1.005"), Decimal("2.250"), Decimal("1.5")]


def _literals(name: str) -> st.SearchStrategy[Any]:
    seen = st.sampled_from([v for v in _POOLS[name] if v is not None])
    if name in {"i", "j"}:
        return st.one_of(
            seen,
            st.integers(-10, 10),
            st.sampled_from(_HUGE_INTS),
            st.sampled_from(_ODD_FLOATS),
            st.floats(-10, 10),
            st.sampled_from(_DECIMALS),
        )
    if name in {"f", "g"}:
        return st.one_of(
            seen,
            st.sampled_from([0.1, 0.5, 2.0, NAN, INF, -0.0, 1e-3, 16777217, 2, 0, Decimal("0.1")]),
            st.floats(-5, 5, width=32).map(float),
            st.floats(-5, 5),
        )
    return st.one_of(
        seen,
        st.sampled_from([*_DECIMALS, Decimal("1e20"), Decimal("-99999999.995"), Decimal("1.0100")]),
        st.integers(-4, 4),
        st.sampled_from([10**8, 10**12, -(10**9)]),
    )


def edge_filters(columns: Sequence[str] = ("i", "j", "f", "g", "p")) -> st.SearchStrategy[Expr]:
    """Random filters over the edge columns, their literals drawn from the awkward cases."""

    def leaf(name: str) -> st.SearchStrategy[Expr]:
        c = col(name)
        values = _literals(name)
        ops: st.SearchStrategy[CompareOp] = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
        return st.one_of(
            st.tuples(ops, values).map(lambda ov: c._cmp(ov[0], ov[1])),
            st.lists(values, max_size=4).map(c.isin),
            st.tuples(values, values).map(lambda lh: c.between(*lh)),
            st.just(c.is_null()),
        )

    leaves = st.one_of(*[leaf(n) for n in columns])

    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            st.tuples(children, children).map(lambda lr: lr[0] & lr[1]),
            st.tuples(children, children).map(lambda lr: lr[0] | lr[1]),
            children.map(lambda e: ~e),
        )

    return st.recursive(leaves, extend, max_leaves=6)
