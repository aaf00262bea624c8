"""Order-insensitive comparison of Arrow tables."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["assert_rows_identical", "assert_tables_equal", "identical", "sort_rows"]


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


def identical(a: Any, b: Any) -> bool:
    """Equal values of the same type, floats bit for bit (NaN equals NaN, 0.0 is not -0.0).

    Example:
        >>> identical(float("nan"), float("nan")), identical(0.0, -0.0), identical(1, 1.0)
        (True, False, False)
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return bool(a == b)


def assert_rows_identical(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Assert two rows have the same keys in the same order and :func:`identical` values.

    What "online equals offline" means for a transform: ``transform_row(row)`` against the same
    row of ``transform(batch).to_pylist()``.

    Example:
        >>> assert_rows_identical({"a": float("nan"), "b": 1}, {"a": float("nan"), "b": 1})
    """
    if list(actual) != list(expected):
        msg = f"keys differ: {list(actual)} != {list(expected)}"
        raise AssertionError(msg)
    bad = {k: (actual[k], expected[k]) for k in expected if not identical(actual[k], expected[k])}
    if bad:
        msg = f"values differ (actual, expected): {bad}"
        raise AssertionError(msg)
