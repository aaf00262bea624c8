"""Order-insensitive comparison of Arrow tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["assert_tables_equal", "sort_rows"]


def _key(row: dict[str, Any]) -> tuple[tuple[int, str], ...]:
    return tuple((0, "") if v is None else (1, repr(v)) for v in row.values())


def sort_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in a canonical order (nulls first), for comparing results whose order is free.

    Example:
        >>> sort_rows([{"a": 2}, {"a": None}, {"a": 1}])
        [{'a': None}, {'a': 1}, {'a': 2}]
    """
    return sorted(rows, key=_key)


def assert_tables_equal(actual: pa.Table, expected: pa.Table, *, check_order: bool = False) -> None:
    """Assert two tables hold the same columns and rows (in any order unless ``check_order``).

    Example:
        >>> import pyarrow as pa
        >>> assert_tables_equal(pa.table({"a": [2, 1]}), pa.table({"a": [1, 2]}))
    """
    if actual.column_names != expected.column_names:
        msg = f"columns differ: {actual.column_names} != {expected.column_names}"
        raise AssertionError(msg)
    left, right = actual.to_pylist(), expected.to_pylist()
    if not check_order:
        left, right = sort_rows(left), sort_rows(right)
    if left != right:
        missing = [r for r in right if r not in left][:5]
        extra = [r for r in left if r not in right][:5]
        msg = f"{len(left)} rows vs {len(right)} expected; missing e.g. {missing}; unexpected e.g. {extra}"
        raise AssertionError(msg)
