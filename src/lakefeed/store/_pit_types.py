"""Type rules of the point-in-time join: time axes, TTL in column units, key and order columns.

Every time column reaches DuckDB as ``int64`` ticks of one unit shared by the spine and the
feature group (nanoseconds to seconds for timestamps, days for dates, the integers themselves
for integer times), so comparisons are exact whatever DuckDB would do with the Arrow types
(it keeps only microseconds of a zoned nanosecond timestamp, for example).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import pyarrow as pa

from lakefeed.errors import ConfigError, SchemaError

__all__ = [
    "TimeAxis",
    "check_key_types",
    "check_order_type",
    "key_column",
    "order_column",
    "time_axis",
    "time_ticks",
    "ttl_ticks",
]

_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_DAY_NS = 86_400 * 1_000_000_000
_FINER = ["s", "ms", "us", "ns"]

TimeKind = Literal["int", "date", "timestamp"]


@dataclass(frozen=True)
class TimeAxis:
    """How the spine time and one group's event time are compared.

    Attributes:
        kind: ``"int"``, ``"date"`` or ``"timestamp"``.
        spine_type: The Arrow type the spine time is cast to before its ``int64`` ticks are taken.
        event_type: The same for the event time (the same unit; the time zone is the column's own).
        tick_ns: Nanoseconds in one tick (None for integer times, which have no unit).
    """

    kind: TimeKind
    spine_type: pa.DataType
    event_type: pa.DataType
    tick_ns: int | None


def _describe(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        zone = f"time zone {t.tz!r}" if t.tz else "no time zone (naive)"
        return f"{t} ({zone})"
    return str(t)


def time_axis(
    spine_type: pa.DataType, event_type: pa.DataType, *, spine_col: str, event_col: str, group: str
) -> TimeAxis:
    """The common axis of a spine time and an event time, or a SchemaError naming both.

    Lossless casts only: a coarser timestamp unit to the finer one, ``date64`` to ``date32``,
    any integer to ``int64``, and a date to a naive timestamp (midnight of that day).
    """
    what = f"spine time {spine_col!r} is {_describe(spine_type)}, event time {event_col!r} of feature group {group!r}"
    what += f" is {_describe(event_type)}"
    for col, t in ((spine_col, spine_type), (event_col, event_type)):
        if not (pa.types.is_integer(t) or pa.types.is_date(t) or pa.types.is_timestamp(t)):
            msg = f"{what}: time column {col!r} must be a timestamp, a date or an integer; cast it first"
            raise SchemaError(msg)
    ints = pa.types.is_integer(spine_type), pa.types.is_integer(event_type)
    if ints == (True, True):
        return TimeAxis("int", pa.int64(), pa.int64(), None)
    if True in ints:
        msg = f"{what}: integer and calendar times cannot be compared; convert one side so both have the same type"
        raise SchemaError(msg)
    dates = pa.types.is_date(spine_type), pa.types.is_date(event_type)
    if dates == (True, True):
        return TimeAxis("date", pa.date32(), pa.date32(), _DAY_NS)
    zoned = [pa.types.is_timestamp(t) and t.tz is not None for t in (spine_type, event_type)]
    if zoned[0] != zoned[1]:
        msg = (
            f"{what}: cannot mix time-zone-aware and naive times (a naive time and a date name no instant); "
            "give both columns a time zone (e.g. pc.assume_timezone(col, 'UTC')) or make both naive"
        )
        raise SchemaError(msg)
    units = [t.unit for t in (spine_type, event_type) if pa.types.is_timestamp(t)]
    unit = max(units, key=_FINER.index)
    spine_target = pa.timestamp(unit, tz=spine_type.tz if pa.types.is_timestamp(spine_type) else None)
    event_target = pa.timestamp(unit, tz=event_type.tz if pa.types.is_timestamp(event_type) else None)
    return TimeAxis("timestamp", spine_target, event_target, _UNIT_NS[unit])


def time_ticks(column: pa.ChunkedArray[Any], target: pa.DataType, *, what: str) -> pa.ChunkedArray[Any]:
    """``column`` cast (losslessly) to ``target``, as ``int64`` ticks."""
    try:
        if pa.types.is_date(target):
            return column.cast(target).cast(pa.int32()).cast(pa.int64())
        return column.cast(target).cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        detail = str(exc).splitlines()[0]
        msg = f"{what} ({column.type}) cannot be converted to {target} without losing values: {detail}; fix its values"
        raise SchemaError(msg) from exc


def ttl_ticks(ttl: timedelta | int | None, axis: TimeAxis, *, group: str) -> int | None:
    """The TTL as a whole number of ticks ``n``: a row qualifies when ``spine - event < n`` ticks.

    For a TTL that is not a whole number of ticks, ``n`` is rounded up, which keeps the rule
    exact: an integer tick difference ``d`` is below a real ``x`` exactly when it is below ``ceil(x)``.
    """
    if ttl is None:
        return None
    if axis.tick_ns is None:
        if isinstance(ttl, timedelta):
            msg = (
                f"feature group {group!r} has integer event times, so its ttl must be an int (same units), got {ttl!r}"
            )
            raise ConfigError(msg)
        return ttl
    if not isinstance(ttl, timedelta):
        msg = f"feature group {group!r} has {axis.kind} event times, so its ttl must be a timedelta, got {ttl!r}"
        raise ConfigError(msg)
    ttl_ns = ((ttl.days * 86_400 + ttl.seconds) * 1_000_000 + ttl.microseconds) * 1_000
    return -(-ttl_ns // axis.tick_ns)


def _key_family(t: pa.DataType) -> str | None:
    if pa.types.is_dictionary(t):
        t = t.value_type
    name = str(t)
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or name == "string_view":
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or name == "binary_view":
        return "binary"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_date(t):
        return "date"
    return None


def check_key_types(
    spine_type: pa.DataType, key_type: pa.DataType, *, spine_col: str, key_col: str, group: str
) -> None:
    """Raise a SchemaError unless a spine key and a group key can be compared for equality."""
    families = _key_family(spine_type), _key_family(key_type)
    pair = f"spine key {spine_col!r} ({spine_type}) and key {key_col!r} of feature group {group!r} ({key_type})"
    if None in families:
        msg = f"{pair}: keys must be integers, strings, binary, booleans or dates; cast the key columns"
        raise SchemaError(msg)
    if families[0] != families[1]:
        msg = f"{pair} cannot be compared ({families[0]} vs {families[1]}); cast one of them to the other's type"
        raise SchemaError(msg)


def key_column(column: pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    """A key column as DuckDB compares it: dictionaries and views decoded, dates as ``date32``."""
    t = column.type
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if str(t) == "string_view":
        return column.cast(pa.large_string())
    if str(t) == "binary_view":
        return column.cast(pa.large_binary())
    if pa.types.is_date64(t):
        return column.cast(pa.date32())
    return column


def check_order_type(t: pa.DataType, *, what: str) -> None:
    """Raise a SchemaError unless a created-time or write-order column has an orderable type."""
    if not (pa.types.is_timestamp(t) or pa.types.is_integer(t) or pa.types.is_date(t)):
        msg = f"{what} is {t}; it must be a timestamp, a date or an integer (greater = later); cast it first"
        raise SchemaError(msg)


def order_column(column: pa.ChunkedArray[Any], *, what: str) -> pa.ChunkedArray[Any]:
    """A created-time or write-order column as ``int64`` (order kept; nulls stay null)."""
    if pa.types.is_date(column.type):
        return time_ticks(column, pa.date32(), what=what)
    try:
        return column.cast(pa.int64())
    except pa.ArrowInvalid as exc:
        msg = f"{what} ({column.type}) holds values beyond int64, which cannot be ordered here; use smaller values"
        raise SchemaError(msg) from exc
