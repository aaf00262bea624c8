"""Hypothesis strategies generating lakefeed filters for a schema."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lakefeed.expr import CompareOp, Expr, col

if TYPE_CHECKING:
    import pyarrow as pa
    from hypothesis.strategies import SearchStrategy

__all__ = ["filters"]


def _values(arrow_type: pa.DataType, pool: Sequence[Any]) -> SearchStrategy[Any]:
    import pyarrow as pa
    from hypothesis import strategies as st

    seen = [v for v in pool if v is not None]
    base: SearchStrategy[Any]
    if pa.types.is_boolean(arrow_type):
        return st.booleans()
    if pa.types.is_integer(arrow_type):
        base = st.integers(min_value=-50, max_value=150)
    elif pa.types.is_floating(arrow_type):
        base = st.floats(min_value=-50, max_value=150, allow_nan=False, allow_infinity=False)
    elif pa.types.is_string(arrow_type):
        base = st.text(alphabet="abcxyz", max_size=3)
    elif pa.types.is_date(arrow_type):
        base = st.dates(min_value=date(2023, 12, 1), max_value=date(2024, 3, 1))
    elif pa.types.is_timestamp(arrow_type):
        start = datetime(2024, 1, 1, tzinfo=None)
        base = st.integers(0, 90 * 24).map(lambda h: start + timedelta(hours=h))
    else:
        raise TypeError(str(arrow_type))
    return st.one_of(base, st.sampled_from(seen)) if seen else base


def filters(
    schema: pa.Schema, sample: dict[str, Sequence[Any]] | None = None, *, max_depth: int = 3
) -> SearchStrategy[Expr]:
    """Random filters over ``schema``'s columns, with literals drawn near ``sample`` values.

    Example:
        >>> import pyarrow as pa
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=5)
        ... @given(filters(pa.schema([("a", pa.int64())])))
        ... def check(f):
        ...     assert isinstance(f, Expr)
        >>> check()
    """
    from hypothesis import strategies as st

    sample = sample or {}

    def leaf_for(name: str) -> SearchStrategy[Expr]:
        t = schema.field(name).type
        values = _values(t, list(sample.get(name, [])))
        ops: SearchStrategy[CompareOp] = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
        c = col(name)
        compare = st.tuples(ops, values).map(lambda ov: c._cmp(ov[0], ov[1]))
        isin = st.lists(values, max_size=4).map(c.isin)
        between = st.tuples(values, values).map(lambda lh: c.between(*lh))
        return st.one_of(compare, isin, between, st.just(c.is_null()))

    leaves = st.one_of(*[leaf_for(n) for n in schema.names])

    def extend(children: SearchStrategy[Expr]) -> SearchStrategy[Expr]:
        return st.one_of(
            st.tuples(children, children).map(lambda lr: lr[0] & lr[1]),
            st.tuples(children, children).map(lambda lr: lr[0] | lr[1]),
            children.map(lambda e: ~e),
        )

    return st.recursive(leaves, extend, max_leaves=2**max_depth)
