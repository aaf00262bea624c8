"""The online feature contract (:class:`OnlineFeatureComputer`) and the helpers its builders share.

The helpers validate arguments (raising :class:`~lakefeed.errors.ConfigError` with the argument,
the value and the fix) and turn the inputs the offline paths accept (a lakefeed ``Table`` or
``Scan``, an Arrow table or record batch, a mapping of columns) into an Arrow table holding only
the columns needed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

    from lakefeed.tables.base import Scan, Table

__all__ = ["FeatureDict", "OnlineFeatureComputer", "TableLike"]

FeatureDict: TypeAlias = dict[str, Any]
"""Features by name, as one online computation returns them."""

TableLike: TypeAlias = "Table | Scan | pa.Table | pa.RecordBatch | Mapping[str, Sequence[Any]]"
"""What the offline (batch) paths read: a lakefeed table or scan, Arrow data, or columns by name."""


class OnlineFeatureComputer(ABC):
    """Base class of the online feature builders: one call turns raw data into named features.

    Subclasses implement :meth:`compute`; each also has a purpose-named method
    (``aggregate``, ``build``, ``get``) with the full set of arguments.

    Example:
        >>> class Doubler(OnlineFeatureComputer):
        ...     def compute(self, data):
        ...         return {"double": 2 * data}
        >>> Doubler().compute(21)
        {'double': 42}
    """

    @abstractmethod
    def compute(self, data: Any) -> FeatureDict:
        """Compute the features of ``data``.

        Args:
            data: The raw input; each subclass documents what it accepts.

        Returns:
            Features by name.
        """


def check_positive_int(value: object, *, argument: str, owner: str, fix: str) -> int:
    """Return ``value`` if it is an int greater than zero, else raise a :class:`ConfigError`.

    Example:
        >>> check_positive_int(3, argument="window_size", owner="SlidingWindowAggregator", fix="")
        3
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        msg = f"{owner}: {argument} must be an int greater than 0, got {value!r}; {fix}"
        raise ConfigError(msg)
    return value


def check_finite_float(value: object, *, argument: str, owner: str) -> float:
    """Return ``value`` as a float if it is a finite real number, else raise a :class:`ConfigError`.

    Example:
        >>> check_finite_float(1, argument="zero_division", owner="InteractionFeatureBuilder")
        1.0
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{owner}: {argument} must be a finite number, got {value!r}"
        raise ConfigError(msg)
    return float(value)


def read_columns(data: TableLike, columns: Sequence[str], *, owner: str) -> pa.Table:
    """Read ``columns`` of ``data`` into one Arrow table (only those columns are read from storage).

    A lakefeed ``Table`` is scanned with ``columns``; a ``Scan`` is re-planned with the same
    filter and snapshot and only ``columns``; Arrow data and mappings are projected.

    Args:
        data: A lakefeed ``Table`` or ``Scan``, a ``pyarrow.Table`` or ``RecordBatch``, or a
            mapping of column name to values.
        columns: The columns needed, each once.
        owner: What needs them, for error messages.

    Returns:
        An Arrow table with exactly ``columns``, in that order.

    Raises:
        ColumnNotFoundError: If a column is missing.
        SchemaError: If ``data`` is none of the accepted kinds.

    Example:
        >>> read_columns({"a": [1, 2], "b": ["x", "y"]}, ["b"], owner="demo").column_names
        ['b']
    """
    import pyarrow as pa

    from lakefeed.tables.base import Scan, Table

    names = list(dict.fromkeys(columns))
    if isinstance(data, Table):
        _check_present(names, list(data.schema.names), owner=owner, where=f"table {data.name}")
        return data.scan(columns=names).to_arrow()
    if isinstance(data, Scan):
        _check_present(names, data.columns, owner=owner, where=f"the scan of table {data.table.name}")
        # Same rows as the scan: its filter and its pinned snapshot (None = the table's current one,
        # read with the current schema, as the scan itself was).
        pinned = None if data.snapshot_id == data.table.snapshot_id else data.snapshot_id
        return data.table.scan(columns=names, filter=data.filter, snapshot=pinned).to_arrow()
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    elif isinstance(data, Mapping):
        _check_present(names, [str(k) for k in data], owner=owner, where="the input mapping")
        data = pa.table({name: data[name] for name in names})
    if not isinstance(data, pa.Table):
        msg = (
            f"{owner}: cannot read {type(data).__name__}; pass a lakefeed Table or Scan, a pyarrow "
            "Table or RecordBatch, or a dict of columns"
        )
        raise SchemaError(msg)
    _check_present(names, data.column_names, owner=owner, where="the input table")
    return data.select(names)


def _check_present(names: Sequence[str], available: Sequence[str], *, owner: str, where: str) -> None:
    missing = [n for n in names if n not in available]
    if missing:
        msg = f"{owner}: no column(s) {missing} in {where}; columns are {list(available)}"
        raise ColumnNotFoundError(msg)


def is_numeric_type(arrow_type: pa.DataType) -> bool:
    """Whether an Arrow type is an integer or floating-point type (booleans and decimals are not).

    Example:
        >>> import pyarrow as pa
        >>> is_numeric_type(pa.int8()), is_numeric_type(pa.string())
        (True, False)
    """
    import pyarrow as pa

    return bool(pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type))


def require_numeric(table: pa.Table, column: str, *, argument: str, owner: str) -> None:
    """Raise a :class:`SchemaError` naming ``column`` unless it holds integers or floats.

    Example:
        >>> import pyarrow as pa
        >>> require_numeric(pa.table({"x": [1.5]}), "x", argument="value", owner="demo")
    """
    arrow_type = table.schema.field(column).type
    if not is_numeric_type(arrow_type):
        msg = (
            f"{owner}: {argument} column {column!r} is {arrow_type}, expected an integer or float column; "
            f"cast it first (e.g. pyarrow.compute.cast(table[{column!r}], 'float64'))"
        )
        raise SchemaError(msg)
