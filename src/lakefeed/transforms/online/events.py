"""Event-time windows per key: offline over a whole table, online from a stream, the same numbers.

An :class:`EventWindow` says *which* events of a key an aggregate covers; :meth:`EventWindow.apply`
computes it for every row of a table (vectorised) and :meth:`EventWindow.online` returns an
:class:`~lakefeed.transforms.online.event_state.EventWindowState` that maintains it event by
event. Both give identical results (``==``, not approximately) for the same events.

The window of a row (or of an online query ``as_of`` a time ``T``) holds the events of the
same key with

* ``time <= T``: every event at ``T`` counts, including ones after the row in the input (ties
  are resolved by time, not by position, so the result depends only on the set of events);
* with ``window=W``: ``T - W < time``, so an event exactly ``W`` before ``T`` has left;
* with ``events=N``: only the ``N`` most recent of those; among equal times the later row
  (input order offline, arrival order online) is the more recent. With both, both limits apply.

Events with a null value are not events: they contribute nothing, though their rows get
features. Aggregates: ``count`` (events in the window), ``sum`` (exact, rounded once: see
:mod:`~lakefeed.transforms.online.exact`; 0.0 for an empty window), ``mean`` (``sum / count``
in float64), ``min`` and ``max`` (zeros as +0.0); a NaN value makes sum, mean, min and max NaN;
mean, min and max are null for an empty window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import numpy as np

from lakefeed.errors import ConfigError, SchemaError
from lakefeed.transforms.online.base import TableLike, check_positive_int, read_columns, require_numeric
from lakefeed.transforms.online.exact import window_sums
from lakefeed.transforms.online.ranges import window_extrema
from lakefeed.transforms.online.timeaxis import ColumnAxis, WindowLength, check_window, column_ticks

if TYPE_CHECKING:
    import pyarrow as pa

    from lakefeed.transforms.online.event_state import EventWindowState

__all__ = ["AGGREGATIONS", "EventAggregation", "EventWindow"]

EventAggregation: TypeAlias = Literal["count", "sum", "mean", "min", "max"]
AGGREGATIONS: tuple[EventAggregation, ...] = ("count", "sum", "mean", "min", "max")
_OWNER = "EventWindow"


@dataclass(frozen=True)
class EventWindow:
    """Aggregates per key over the last ``window`` of time and/or the last ``events`` events.

    Args:
        key: The column (event field) grouping events, e.g. ``"user_id"``.
        time: The event-time column: timestamp, date, integer or float (see
            :mod:`~lakefeed.transforms.online.timeaxis` for units).
        value: The numeric column aggregated; None for ``count`` only.
        window: How far back a window reaches: a ``timedelta``, or a number (seconds for
            timestamp and date columns, the column's unit for numeric ones).
        events: At most this many most recent events.
        aggs: Any of ``"count"``, ``"sum"``, ``"mean"``, ``"min"``, ``"max"``.
        prefix: Output names are ``prefix + agg``; defaults to ``f"{value}_"`` (``""`` without value).

    Raises:
        ConfigError: For a bad window, events, aggregation or column name.

    Example:
        >>> import pyarrow as pa
        >>> clicks = pa.table({"user": ["a", "a", "b", "a"], "ts": [0, 5, 6, 12], "amount": [1.0, 2.0, 4.0, 8.0]})
        >>> spec = EventWindow("user", "ts", value="amount", window=10, aggs=["count", "sum"])
        >>> out = spec.apply(clicks)
        >>> out.column_names
        ['user', 'ts', 'amount_count', 'amount_sum']
        >>> out["amount_count"].to_pylist(), out["amount_sum"].to_pylist()
        ([1, 2, 1, 2], [1.0, 3.0, 4.0, 10.0])
        >>> state = spec.online()
        >>> for row in clicks.to_pylist():
        ...     state.update(row)
        >>> state.get("a")
        {'amount_count': 2, 'amount_sum': 10.0}
    """

    key: str
    time: str
    _: KW_ONLY
    value: str | None = None
    window: WindowLength | None = None
    events: int | None = None
    aggs: Sequence[str] = AGGREGATIONS
    prefix: str | None = None

    def __post_init__(self) -> None:
        for argument in ("key", "time", "value"):
            name = getattr(self, argument)
            if not (isinstance(name, str) and name) and not (argument == "value" and name is None):
                msg = f"{_OWNER}: {argument} must be a column name (a non-empty str), got {name!r}"
                raise ConfigError(msg)
        if self.prefix is not None and not isinstance(self.prefix, str):
            msg = f"{_OWNER}: prefix must be a str (or None for f'{{value}}_'), got {self.prefix!r}"
            raise ConfigError(msg)
        if self.window is None and self.events is None:
            msg = f"{_OWNER}: give window= (e.g. timedelta(days=7)), events= (e.g. 100), or both"
            raise ConfigError(msg)
        if self.window is not None:
            check_window(self.window, owner=_OWNER)
        if self.events is not None:
            check_positive_int(self.events, argument="events", owner=_OWNER, fix="e.g. events=100 for the last 100")
        aggs = (self.aggs,) if isinstance(self.aggs, str) else tuple(self.aggs)
        unknown = [a for a in aggs if a not in AGGREGATIONS]
        if unknown or not aggs or len(set(aggs)) != len(aggs):
            msg = f"{_OWNER}: aggs must name each of {list(AGGREGATIONS)} at most once, got {list(aggs)}"
            raise ConfigError(msg)
        if self.value is None and aggs != ("count",):
            if self.aggs is AGGREGATIONS:
                aggs = ("count",)
            else:
                msg = f"{_OWNER}: aggs {list(aggs)} need a value column; pass value='amount' or aggs=['count']"
                raise ConfigError(msg)
        object.__setattr__(self, "aggs", aggs)
        names = self.output_names
        clash = [n for n in names if n in (self.key, self.time)]
        if clash:
            msg = f"{_OWNER}: output column(s) {clash} would replace the key or time column; pass prefix='...'"
            raise ConfigError(msg)

    @property
    def output_names(self) -> list[str]:
        """The names of the aggregate columns (or keys of the online dicts), in ``aggs`` order."""
        prefix = self.prefix if self.prefix is not None else (f"{self.value}_" if self.value else "")
        return [f"{prefix}{agg}" for agg in self.aggs]

    def online(self) -> EventWindowState:
        """An empty online state for this window (feed it with ``update``)."""
        from lakefeed.transforms.online.event_state import EventWindowState

        return EventWindowState(self)

    def apply(self, data: TableLike) -> pa.Table:
        """Compute the window aggregates for every row of ``data``, vectorised.

        Only the key, time and value columns are read. Rows keep their input order; the result
        holds the key and time columns and one column per aggregate.

        Args:
            data: A lakefeed ``Table`` or ``Scan``, a ``pyarrow.Table`` or ``RecordBatch``, or a
                dict of columns.

        Returns:
            An Arrow table: key, time, then ``output_names`` (count int64, the others float64).

        Raises:
            ColumnNotFoundError: A named column does not exist.
            SchemaError: The value column is not numeric, the time column is not a time, or
                the key or time column has nulls.
        """
        import pyarrow as pa

        columns = [self.key, self.time, *([self.value] if self.value else [])]
        table = read_columns(data, columns, owner=_OWNER)
        if self.value is not None:
            require_numeric(table, self.value, argument="value", owner=_OWNER)
        groups = _group_ids(table.column(self.key), self.key)
        axis = column_ticks(table.column(self.time), self.window, name=self.time, owner=_OWNER)
        if self.value is not None:
            column = table.column(self.value)
            present = np.asarray(column.is_valid().to_numpy(), dtype=bool)
            values = np.asarray(column.cast(pa.float64(), safe=False).to_numpy(), dtype=np.float64)
        else:
            present = np.ones(table.num_rows, dtype=bool)
            values = np.zeros(table.num_rows, dtype=np.float64)
        order = np.lexsort((axis.ticks, groups))  # by key, then time; stable: ties keep input order
        events = order[present[order]]
        lo, hi = _bounds(groups, axis, order, present, self.events)
        aggregates = _aggregate(self.aggs, values[events], lo, hi)
        out = table.select([self.key, self.time])
        for name, agg in zip(self.output_names, self.aggs, strict=True):
            out = out.append_column(name, aggregates[agg])
        return out


def _group_ids(column: pa.ChunkedArray[Any], name: str) -> np.ndarray:
    """Dense int64 ids of the key values (equal keys, equal ids)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        msg = (
            f"{_OWNER}: key column {name!r} has {column.null_count} null(s); every event needs a key; "
            f"filter them out first (lf.col({name!r}).is_not_null())"
        )
        raise SchemaError(msg)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    try:
        encoded = cast("pa.DictionaryArray[Any, Any]", pc.dictionary_encode(column.combine_chunks()))
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
        msg = f"{_OWNER}: key column {name!r} is {column.type}, which cannot be grouped; use a string or integer key"
        raise SchemaError(msg) from exc
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _bounds(
    groups: np.ndarray, axis: ColumnAxis, order: np.ndarray, present: np.ndarray, last: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """For every row (input order), its window as a range ``[lo, hi)`` of the sorted events.

    Rows are handled in ``order`` (by key, then time), so every search below looks up sorted
    needles in a sorted haystack. Times and thresholds become dense ranks; ``key * stride + rank``
    then orders rows by key first, so one ``searchsorted`` finds a position within a key.
    """
    ticks = axis.ticks[order]
    keys = groups[order]
    order_keys, below, right = _thresholds(ticks, axis.window)
    pieces = [order_keys(ticks)] if below is None else [order_keys(ticks), order_keys(below)]
    uniques, inverse = np.unique(np.concatenate(pieces), return_inverse=True)
    ranks = inverse.reshape(-1).astype(np.int64) + 1  # rank 0 sorts before every time of a key
    stride = len(uniques) + 1
    row_keys = keys * stride + ranks[: len(ticks)]
    event_keys = row_keys[present[order]]
    hi = np.searchsorted(event_keys, row_keys, side="right")
    lo = np.searchsorted(event_keys, keys * stride, side="left")
    if below is not None and right is not None:
        threshold_keys = keys.copy() * stride
        threshold_keys[right >= 0] += ranks[len(ticks) :]
        after = lo.copy()
        above, at = right == 1, right == 0  # events after the threshold / at it too (see _thresholds)
        after[above] = np.searchsorted(event_keys, threshold_keys[above], side="right")
        after[at] = np.searchsorted(event_keys, threshold_keys[at], side="left")
        lo = np.maximum(lo, after)
    if last is not None:
        lo = np.maximum(lo, hi - last)
    lo_by_row = np.empty(len(order), dtype=np.int64)
    hi_by_row = np.empty(len(order), dtype=np.int64)
    lo_by_row[order] = lo
    hi_by_row[order] = hi
    return lo_by_row, hi_by_row


def _thresholds(
    ticks: np.ndarray, window: int | float | None
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray | None, np.ndarray | None]:
    """An order-preserving key function, the finite thresholds ``time - window`` and how to search them.

    ``right[i]`` is 1 when events strictly after threshold ``i`` are in the window, 0 when events at
    it are in too (a float threshold rounded up), -1 when the threshold lies before every time.
    """
    if ticks.dtype.kind == "f":

        def identity(values: np.ndarray) -> np.ndarray:
            return values

        if window is None:
            return identity, None, None
        width = float(window)
        rounded = ticks - width
        # two-sum: ticks - width == rounded + error exactly
        back = rounded - ticks
        error = (ticks - (rounded - back)) + (-width - back)
        finite = np.isfinite(rounded)
        right = np.where(~finite, -1, np.where(error < 0, 0, 1))
        return identity, rounded[finite], right
    flip = np.uint64(1 << 63)

    def unsigned(values: np.ndarray) -> np.ndarray:
        result: np.ndarray = values.astype(np.int64).view(np.uint64) ^ flip
        return result

    if window is None:
        return unsigned, None, None
    shifted = unsigned(ticks)
    width = int(window)
    if width >= 1 << 64:
        return unsigned, np.zeros(0, dtype=np.int64), np.full(len(ticks), -1)
    reachable = shifted >= np.uint64(width)
    below = ((shifted[reachable] - np.uint64(width)) ^ flip).view(np.int64)  # time - window, without overflow
    return unsigned, below, np.where(reachable, 1, -1)


def _aggregate(aggs: Sequence[str], values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, pa.Array[Any]]:
    import pyarrow as pa

    count = hi - lo
    empty = count == 0
    out: dict[str, pa.Array[Any]] = {"count": pa.array(count, type=pa.int64())}
    if "sum" in aggs or "mean" in aggs:
        sums = window_sums(values, lo, hi)
        out["sum"] = pa.array(sums, type=pa.float64())
        with np.errstate(invalid="ignore", divide="ignore"):
            out["mean"] = pa.array(sums / np.maximum(count, 1), type=pa.float64(), mask=empty)
    if "min" in aggs or "max" in aggs:
        minima, maxima = window_extrema(values, lo, hi)
        out["min"] = pa.array(minima, type=pa.float64(), mask=empty)
        out["max"] = pa.array(maxima, type=pa.float64(), mask=empty)
    return out
