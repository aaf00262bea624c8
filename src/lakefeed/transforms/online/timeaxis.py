"""Event times as exact numbers, and the time-window test ``as_of - window < t <= as_of``.

Times become exact numbers on an axis: integer ticks for Arrow timestamps (the column's unit),
dates (days) and integer columns, float64 for float columns. Online, a ``datetime`` becomes
integer nanoseconds since the epoch (naive datetimes count as UTC, as Arrow stores them), a
``date`` days, an int or float itself. The window test is evaluated *exactly* (no rounding of
``as_of - window``) so it does not depend on the tick unit: offline microseconds and online
nanoseconds give the same windows.

Windows: a ``timedelta`` is exact; a number means seconds for timestamps and dates, and the
column's own unit for numeric time columns, where a ``timedelta`` is converted with
``total_seconds()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from lakefeed.errors import ConfigError, SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ColumnAxis",
    "Domain",
    "Tick",
    "TimeValue",
    "WindowLength",
    "check_window",
    "column_ticks",
    "domain_window",
    "event_tick",
    "numeric_window",
    "threshold",
    "window_ticks",
]

Tick: TypeAlias = int | float
"""A time as an exact number on the axis of its domain."""

TimeValue: TypeAlias = datetime | date | int | float | np.datetime64
"""What an online event may carry as its time."""

WindowLength: TypeAlias = timedelta | int | float
"""A time window: a timedelta, or a number (see the module docstring for its unit)."""

Domain: TypeAlias = Literal["ns", "day", "number"]
"""The kind of axis online times live on."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_MAX_EXACT_INT = 1 << 53


def check_window(window: object, *, owner: str) -> WindowLength:
    """Validate a window length (a positive timedelta or a positive finite number).

    Example:
        >>> check_window(timedelta(days=7), owner="EventWindow")
        datetime.timedelta(days=7)
    """
    fix = "pass a positive timedelta (timedelta(days=7)) or a positive number of seconds"
    if isinstance(window, timedelta):
        if window <= timedelta(0):
            msg = f"{owner}: window must be positive, got {window!r}; {fix}"
            raise ConfigError(msg)
        return window
    if isinstance(window, bool) or not isinstance(window, int | float) or not (0 < window < math.inf):
        msg = f"{owner}: window must be a positive timedelta or number, got {window!r}; {fix}"
        raise ConfigError(msg)
    if isinstance(window, int) and window > _MAX_EXACT_INT:
        msg = f"{owner}: window {window} is larger than 2**53; use a smaller window"
        raise ConfigError(msg)
    return window


def _seconds(window: WindowLength) -> Fraction:
    if isinstance(window, timedelta):
        return Fraction(window // timedelta(microseconds=1), 10**6)
    return Fraction(window)


def numeric_window(window: WindowLength) -> int | float:
    """The window on a numeric axis: the number itself, or ``total_seconds()`` of a timedelta.

    Example:
        >>> numeric_window(timedelta(minutes=1)), numeric_window(5)
        (60.0, 5)
    """
    return window.total_seconds() if isinstance(window, timedelta) else window


def window_ticks(window: WindowLength, ticks_per_second: int) -> int:
    """The smallest integer number of ticks ``w`` with ``d < window  <=>  d < w`` for integer ``d``.

    Example:
        >>> window_ticks(timedelta(milliseconds=1500), 1), window_ticks(2, 1000)
        (2, 2000)
    """
    return math.ceil(_seconds(window) * ticks_per_second)


@dataclass(frozen=True)
class ColumnAxis:
    """An offline time column as numbers: int64 ticks or float64, and the window on that axis.

    Example:
        >>> ColumnAxis(np.array([0, 5]), 3).window
        3
    """

    ticks: np.ndarray
    window: int | float | None
    """Integer ticks (``ceil``, see :func:`window_ticks`), the float window for float columns, or None."""


def column_ticks(column: pa.ChunkedArray[Any], window: WindowLength | None, *, name: str, owner: str) -> ColumnAxis:
    """Turn an Arrow time column into exact numbers and the window into the same unit.

    Raises:
        SchemaError: The column has nulls, non-finite floats, or a type that is not a time.

    Example:
        >>> import pyarrow as pa
        >>> axis = column_ticks(pa.chunked_array([[0, 1500]], pa.timestamp("ms")), 1, name="ts", owner="demo")
        >>> axis.ticks.tolist(), axis.window
        ([0, 1500], 1000)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        msg = (
            f"{owner}: time column {name!r} has {column.null_count} null(s); every event needs a time; "
            f"filter them out first (lf.col({name!r}).is_not_null())"
        )
        raise SchemaError(msg)
    arrow_type = column.type
    if pa.types.is_timestamp(arrow_type):
        ticks = column.cast(pa.int64()).to_numpy()
        per_second = _TICKS_PER_SECOND[arrow_type.unit]
        return ColumnAxis(column.cast(pa.int64()).to_numpy(), _maybe(window, lambda w: window_ticks(w, per_second)))
    if pa.types.is_date32(arrow_type):
        return ColumnAxis(column.cast(pa.int32()).to_numpy().astype(np.int64), _maybe(window, _days))
    if pa.types.is_date64(arrow_type):
        return ColumnAxis(column.cast(pa.int64()).to_numpy(), _maybe(window, lambda w: window_ticks(w, 1000)))
    if pa.types.is_integer(arrow_type):
        if pa.types.is_uint64(arrow_type) and len(column) and pc.max(column).as_py() >= 1 << 63:
            msg = f"{owner}: time column {name!r} holds values of 2**63 or more; use int64 times"
            raise SchemaError(msg)
        ticks = column.to_numpy().astype(np.int64)
        return ColumnAxis(ticks, _maybe(window, lambda w: math.ceil(Fraction(numeric_window(w)))))
    if pa.types.is_floating(arrow_type):
        ticks = column.to_numpy().astype(np.float64)
        if not np.isfinite(ticks).all():
            msg = f"{owner}: time column {name!r} holds NaN or infinite values; every event needs a finite time"
            raise SchemaError(msg)
        return ColumnAxis(ticks, _maybe(window, lambda w: float(numeric_window(w))))
    msg = (
        f"{owner}: time column {name!r} is {arrow_type}; expected a timestamp, date, integer or float column "
        f"(cast strings with pyarrow.compute.strptime)"
    )
    raise SchemaError(msg)


def _maybe(window: WindowLength | None, convert: Callable[[WindowLength], int | float]) -> int | float | None:
    return None if window is None else convert(window)


def _days(window: WindowLength) -> int:
    return math.ceil(_seconds(window) / 86400)


def event_tick(value: object, *, what: str, owner: str) -> tuple[Domain, Tick]:
    """An online event's time on its axis: ``("ns", int)``, ``("day", int)`` or ``("number", x)``.

    Raises:
        SchemaError: The value is not a time, or is a NaN or infinite float.

    Example:
        >>> event_tick(datetime(1970, 1, 1, 0, 0, 1), what="event time 'ts'", owner="demo")
        ('ns', 1000000000)
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        nanos = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        return "ns", nanos + int(getattr(value, "nanosecond", 0))  # pandas.Timestamp keeps nanoseconds
    if isinstance(value, date):
        return "day", (value - _EPOCH.date()).days
    if isinstance(value, np.datetime64):
        return "ns", int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
        msg = f"{owner}: {what} is {value!r}; expected a datetime, date, int or float"
        raise SchemaError(msg)
    if isinstance(value, int | np.integer):
        return "number", int(value)
    number = float(value)
    if not math.isfinite(number):
        msg = f"{owner}: {what} is {number!r}; every event needs a finite time"
        raise SchemaError(msg)
    return "number", number


def domain_window(domain: Domain, window: WindowLength) -> int | float:
    """The window on an online axis (integer ticks for ``ns`` and ``day``, a number for ``number``).

    Example:
        >>> domain_window("ns", timedelta(microseconds=3)), domain_window("day", timedelta(hours=36))
        (3000, 2)
    """
    if domain == "ns":
        return window_ticks(window, 10**9)
    if domain == "day":
        return _days(window)
    return numeric_window(window)


def threshold(as_of: Tick, window: int | float) -> Tick | Fraction:
    """``as_of - window``, exactly: an int when both are ints, else a Fraction.

    Example:
        >>> threshold(10, 3), threshold(0.5, 0.25)
        (7, Fraction(1, 4))
    """
    if isinstance(as_of, int) and isinstance(window, int):
        return as_of - window
    return Fraction(as_of) - Fraction(window)
