"""The online side of :class:`~lakefeed.transforms.online.events.EventWindow`: per-key state fed event by event.

Per key the state keeps the events still inside some future window (oldest evicted on each
update), prefix sums of their exact values (Python ints, see
:mod:`~lakefeed.transforms.online.exact`), prefix counts of NaN and infinite values, and
monotonic stacks of candidate minima and maxima. An update costs amortised O(1) big-int
additions; a query O(log n) bisections. The results equal :meth:`EventWindow.apply` exactly.

Events of one key must arrive in time order (equal times are fine; the later arrival counts as
the more recent): an older event raises :class:`~lakefeed.errors.ConfigError`, because its
effect on windows already answered cannot be undone. Sort late data and use the offline path.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from lakefeed.errors import ColumnNotFoundError, ConfigError, SchemaError
from lakefeed.transforms.online.base import FeatureDict, OnlineFeatureComputer
from lakefeed.transforms.online.exact import apply_nonfinite, scaled, unscale
from lakefeed.transforms.online.timeaxis import Domain, Tick, TimeValue, domain_window, event_tick, threshold

if TYPE_CHECKING:
    from lakefeed.transforms.online.events import EventWindow

__all__ = ["EventWindowState"]

_OWNER = "EventWindowState"
_COMPACT_AT = 64


class _KeyState:
    """The retained events of one key; indices are logical (they never shift on eviction)."""

    __slots__ = ("highs", "lows", "nans", "negs", "offset", "poss", "start", "sums", "times", "values")

    def __init__(self) -> None:
        self.times: list[Tick] = []
        self.values: list[float] = []
        self.sums: list[int] = [0]  # sums[k]: exact scaled sum of the first k retained finite values
        self.nans: list[int] = [0]
        self.poss: list[int] = [0]
        self.negs: list[int] = [0]
        self.lows: list[int] = []  # indices whose values increase: candidates for the minimum
        self.highs: list[int] = []  # indices whose values decrease: candidates for the maximum
        self.offset = 0  # logical index of times[0]
        self.start = 0  # logical index of the oldest event still in a window

    @property
    def end(self) -> int:
        return self.offset + len(self.times)

    def append(self, time: Tick, value: float) -> None:
        index = self.end
        self.times.append(time)
        self.values.append(value)
        finite = math.isfinite(value)
        self.sums.append(self.sums[-1] + (scaled(value) if finite else 0))
        self.nans.append(self.nans[-1] + (value != value))
        self.poss.append(self.poss[-1] + (value == math.inf))
        self.negs.append(self.negs[-1] + (value == -math.inf))
        if value != value:
            return
        canonical = value + 0.0  # -0.0 counts as +0.0, as offline
        while self.lows and self.values[self.lows[-1] - self.offset] >= canonical:
            self.lows.pop()
        self.lows.append(index)
        while self.highs and self.values[self.highs[-1] - self.offset] <= canonical:
            self.highs.pop()
        self.highs.append(index)

    def window(self, as_of: Tick, width: int | float | None, last: int | None) -> int:
        """The logical index of the oldest event in the window ending at ``as_of``."""
        lo = self.start
        if width is not None:
            bound = threshold(as_of, width)
            lo = max(lo, self.offset + bisect_right(self.times, bound, lo=lo - self.offset))
        if last is not None:
            lo = max(lo, self.end - last)
        return lo

    def evict(self, start: int) -> None:
        self.start = max(self.start, start)
        dropped = self.start - self.offset
        if dropped >= _COMPACT_AT and 2 * dropped >= len(self.times):
            for name in ("times", "values", "sums", "nans", "poss", "negs"):
                setattr(self, name, getattr(self, name)[dropped:])
            self.lows = self.lows[bisect_left(self.lows, self.start) :]
            self.highs = self.highs[bisect_left(self.highs, self.start) :]
            self.offset = self.start

    def aggregate(self, lo: int) -> dict[str, int | float | None]:
        count = self.end - lo
        a, b = lo - self.offset, len(self.times)
        nans = self.nans[b] - self.nans[a]
        total = apply_nonfinite(
            unscale(self.sums[b] - self.sums[a]), nans, self.poss[b] - self.poss[a], self.negs[b] - self.negs[a]
        )
        result: dict[str, int | float | None] = {"count": count, "sum": total, "mean": None, "min": None, "max": None}
        if count:
            result["mean"] = total / count
            if nans:
                result["min"] = result["max"] = math.nan
            else:
                result["min"] = self.values[self.lows[bisect_left(self.lows, lo)] - self.offset] + 0.0
                result["max"] = self.values[self.highs[bisect_left(self.highs, lo)] - self.offset] + 0.0
        return result


class EventWindowState(OnlineFeatureComputer):
    """Event-window aggregates per key, maintained from a stream of events.

    Create it with :meth:`EventWindow.online`. ``update`` takes an event (a mapping holding the
    key, time and value fields); ``get`` answers for a key as of a time at or after the key's
    latest event. For the rows of a table fed in time order, ``get(key, as_of=row_time)`` after
    all events at ``row_time`` equals ``EventWindow.apply`` on that row.

    Example:
        >>> from datetime import datetime, timedelta
        >>> from lakefeed.transforms.online import EventWindow
        >>> state = EventWindow("user", "ts", value="amount", window=timedelta(hours=1), aggs=["sum", "max"]).online()
        >>> state.update({"user": 7, "ts": datetime(2024, 1, 1, 9, 0), "amount": 5.0})
        >>> state.update({"user": 7, "ts": datetime(2024, 1, 1, 9, 30), "amount": 2.5})
        >>> state.get(7), state.get(7, as_of=datetime(2024, 1, 1, 10, 0))
        ({'amount_sum': 7.5, 'amount_max': 5.0}, {'amount_sum': 2.5, 'amount_max': 2.5})
    """

    def __init__(self, window: EventWindow) -> None:
        self.window = window
        self._keys: dict[Hashable, _KeyState] = {}
        self._domain: Domain | None = None
        self._width: int | float | None = None
        self._watermark: Tick | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def _tick(self, value: object, what: str) -> Tick:
        domain, tick = event_tick(value, what=what, owner=_OWNER)
        if self._domain is None:
            self._domain = domain
            if self.window.window is not None:
                self._width = domain_window(domain, self.window.window)
        elif domain != self._domain:
            kinds = {"ns": "datetimes", "day": "dates", "number": "numbers"}
            msg = f"{_OWNER}: {what} is {value!r} ({kinds[domain]}), but earlier times were {kinds[self._domain]}"
            raise SchemaError(msg)
        return tick

    def update(self, event: Mapping[str, Any]) -> None:
        """Add one event; its time must not be before the key's latest event.

        Args:
            event: A mapping with the key and time fields and (if the window has one) the value
                field; a None value is not an event and changes nothing.

        Raises:
            ColumnNotFoundError: A field is missing from the event.
            SchemaError: The key is None, the time is not a time, or the value is not a number.
            ConfigError: The event is older than the key's latest event, or than ``expire``'s time.
        """
        spec = self.window
        fields = [spec.key, spec.time, *([spec.value] if spec.value else [])]
        missing = [name for name in fields if name not in event]
        if missing:
            msg = f"{_OWNER}: event has no field(s) {missing}; it has {list(event)}"
            raise ColumnNotFoundError(msg)
        key = event[spec.key]
        if key is None:
            msg = f"{_OWNER}: event key {spec.key!r} is None; every event needs a key"
            raise SchemaError(msg)
        time = self._tick(event[spec.time], f"event time {spec.time!r}")
        value = 0.0
        if spec.value is not None:
            raw = event[spec.value]
            if raw is None:
                return
            if isinstance(raw, bool | np.bool_) or not isinstance(raw, int | float | np.integer | np.floating):
                msg = f"{_OWNER}: event value {spec.value!r} is {raw!r}; expected a number (or None)"
                raise SchemaError(msg)
            value = float(raw)
        if self._watermark is not None and time < self._watermark:
            msg = (
                f"{_OWNER}: event time {event[spec.time]!r} is before the time {self._watermark!r} "
                "given to expire(); such late events cannot be applied online"
            )
            raise ConfigError(msg)
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
        elif state.times and time < state.times[-1]:
            msg = (
                f"{_OWNER}: out-of-order event for key {key!r}: time {event[spec.time]!r} is before the key's "
                "latest event; feed events of a key in time order, or compute late data with EventWindow.apply"
            )
            raise ConfigError(msg)
        state.append(time, value)
        state.evict(state.window(time, self._width, spec.events))

    def get(self, key: Hashable, as_of: TimeValue | None = None) -> FeatureDict:
        """The aggregates of ``key``'s window ending at ``as_of`` (default: its latest event).

        Args:
            key: The key; an unknown key has an empty window.
            as_of: The end of the window (inclusive); at or after the key's latest event and the
                time given to :meth:`expire`, which together are the default.

        Returns:
            ``{name: aggregate}`` named as in :attr:`EventWindow.output_names`.

        Raises:
            ConfigError: ``as_of`` is before the key's latest event or before ``expire``'s time.
            SchemaError: ``as_of`` is a different kind of time than the events'.
        """
        state = self._keys.get(key)
        floors = [t for t in (state.times[-1] if state is not None else None, self._watermark) if t is not None]
        floor = max(floors) if floors else None
        if as_of is None:
            tick = floor
        else:
            tick = self._tick(as_of, "as_of")
            if floor is not None and tick < floor:
                msg = (
                    f"{_OWNER}: as_of={as_of!r} is before the latest event (or expire time) of key {key!r}; "
                    "online state answers only as of that time or later"
                )
                raise ConfigError(msg)
        lo = state.window(tick, self._width, self.window.events) if state is not None and tick is not None else 0
        values = state.aggregate(lo) if state is not None else _KeyState().aggregate(0)
        return {name: values[agg] for name, agg in zip(self.window.output_names, self.window.aggs, strict=True)}

    def compute(self, data: Any) -> FeatureDict:
        """``update(event)``, then the features of the event's key as of the event's time.

        Events arriving later with the same time are not included yet (offline they are);
        call :meth:`get` after a whole group of equal times for the offline answer.

        Args:
            data: One event, as for :meth:`update`.

        Returns:
            The window aggregates, as :meth:`get` returns them.
        """
        self.update(data)
        return self.get(data[self.window.key], as_of=data[self.window.time])

    def expire(self, now: TimeValue) -> int:
        """Drop events (and keys) that no window ending at ``now`` or later can hold.

        Only time windows expire events. Afterwards events and ``as_of`` before ``now`` are refused.

        Args:
            now: The earliest time still to be asked about.

        Returns:
            How many keys were dropped.

        Example:
            >>> from lakefeed.transforms.online import EventWindow
            >>> state = EventWindow("k", "t", window=10).online()
            >>> state.update({"k": "idle", "t": 0})
            >>> state.update({"k": "busy", "t": 95})
            >>> state.expire(100), len(state)
            (1, 1)
        """
        tick = self._tick(now, "now")
        self._watermark = tick if self._watermark is None else max(self._watermark, tick)
        if self._width is None:
            return 0
        gone = []
        for key, state in self._keys.items():
            if state.times[-1] > tick:
                continue  # a newer event: nothing beyond its own eviction applies
            lo = state.window(tick, self._width, self.window.events)
            if lo >= state.end:
                gone.append(key)
            else:
                state.evict(lo)
        for key in gone:
            del self._keys[key]
        return len(gone)
