"""Exponentially time-decayed aggregates: :class:`TimeDecayFeatureBuilder`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np

from lakefeed.errors import ConfigError, SchemaError
from lakefeed.transforms.online.base import FeatureDict, OnlineFeatureComputer

__all__ = ["DECAY_AGGREGATIONS", "DecayAggregation", "TimeDecayFeatureBuilder"]

DecayAggregation: TypeAlias = Literal["weighted_mean", "weighted_sum", "decayed_count", "weighted_std"]
DECAY_AGGREGATIONS: tuple[DecayAggregation, ...] = ("weighted_mean", "weighted_sum", "decayed_count", "weighted_std")
_OWNER = "TimeDecayFeatureBuilder"


class TimeDecayFeatureBuilder(OnlineFeatureComputer):
    """Aggregates in which a value's weight decays exponentially with its age.

    With timestamps, the weight of the value at time ``t`` is ``decay_factor ** (t_ref - t)``,
    where ``t_ref`` is ``now`` if given, else the latest timestamp: ``decay_factor`` is the
    weight kept per *one unit of the timestamps* (per second for epoch seconds, per day for
    day numbers). A half-life of ``h`` units is ``decay_factor = 0.5 ** (1 / h)``. Without
    timestamps the values are taken as equally spaced, oldest first: the latest has weight 1,
    the one before ``decay_factor``, and so on.

    Aggregations (``w`` the weights, ``x`` the values):

    * ``weighted_mean``: ``sum(w x) / sum(w)``; with ``decay_factor = 1 - alpha`` and no
      timestamps it is the last value of ``pandas.Series.ewm(alpha=alpha, adjust=True).mean()``.
    * ``weighted_sum``: ``sum(w x)``, e.g. a decayed spend.
    * ``decayed_count``: ``sum(w)``, a decayed event count.
    * ``weighted_std``: ``sqrt(sum(w (x - mean)**2) / sum(w))`` (as ``ewm(...).std(bias=True)``).

    No values give 0.0 for the sums and NaN for the mean and std; a NaN value makes the
    result NaN (None counts as NaN). ``decay_factor=1`` weighs every value equally.

    Args:
        decay_factor: Weight kept per unit of time (or per position), in ``(0, 1]``.
        aggregation: One of ``weighted_mean``, ``weighted_sum``, ``decayed_count``, ``weighted_std``.

    Raises:
        ConfigError: For a decay factor outside ``(0, 1]`` or an unknown aggregation.

    Example:
        >>> TimeDecayFeatureBuilder(0.5).build([4.0, 8.0])  # weights 0.5 and 1
        {'weighted_mean': 6.666666666666667}
        >>> TimeDecayFeatureBuilder(0.5, "weighted_sum").build([4.0, 8.0], timestamps=[0.0, 2.0])
        {'weighted_sum': 9.0}
    """

    def __init__(self, decay_factor: float, aggregation: str = "weighted_mean") -> None:
        if (
            isinstance(decay_factor, bool)
            or not isinstance(decay_factor, int | float)
            or not (0.0 < decay_factor <= 1.0)
        ):
            msg = (
                f"{_OWNER}: decay_factor must be in (0, 1], got {decay_factor!r}; it is the weight kept per "
                "unit of time, e.g. 0.5 ** (1 / half_life)"
            )
            raise ConfigError(msg)
        if aggregation not in DECAY_AGGREGATIONS:
            msg = f"{_OWNER}: aggregation must be one of {list(DECAY_AGGREGATIONS)}, got {aggregation!r}"
            raise ConfigError(msg)
        self.decay_factor = float(decay_factor)
        self.aggregation: DecayAggregation = aggregation  # checked above

    def weights(self, count: int, timestamps: Sequence[float] | None = None, *, now: float | None = None) -> np.ndarray:
        """The weights of ``count`` values (float64), as :meth:`build` uses them.

        Example:
            >>> TimeDecayFeatureBuilder(0.5).weights(3).tolist()
            [0.25, 0.5, 1.0]
        """
        if timestamps is None:
            if now is not None:
                msg = f"{_OWNER}: now={now!r} needs timestamps; without them values decay by position"
                raise ConfigError(msg)
            ages = np.arange(count - 1, -1, -1, dtype=np.float64)
        else:
            times = _floats(timestamps, "timestamps")
            if len(times) != count:
                msg = f"{_OWNER}: got {count} values but {len(times)} timestamps; pass one timestamp per value"
                raise ConfigError(msg)
            if not np.isfinite(times).all():
                msg = f"{_OWNER}: timestamps must be finite numbers, got {timestamps!r}"
                raise ConfigError(msg)
            reference = float(times.max()) if count else 0.0
            if now is not None:
                if not math.isfinite(now) or (count and now < reference):
                    msg = f"{_OWNER}: now={now!r} must be finite and not before the latest timestamp {reference!r}"
                    raise ConfigError(msg)
                reference = float(now)
            ages = reference - times
        result: np.ndarray = np.power(self.decay_factor, ages)
        return result

    def build(
        self, values: Sequence[float], timestamps: Sequence[float] | None = None, *, now: float | None = None
    ) -> FeatureDict:
        """The decayed aggregate of ``values``.

        Args:
            values: Numbers (oldest first when there are no timestamps).
            timestamps: One time per value, any order, in the unit ``decay_factor`` is per.
            now: The time the weights are relative to (default: the latest timestamp); not
                before any timestamp. Moves ``weighted_sum`` and ``decayed_count`` only.

        Returns:
            ``{aggregation: value}``.

        Raises:
            ConfigError: Timestamps and values differ in length, or a timestamp or ``now`` is bad.
            SchemaError: A value is not a number.
        """
        x = _floats(values, "values")
        w = self.weights(len(x), timestamps, now=now)
        total = float(w.sum())
        weighted = float((w * x).sum())
        if self.aggregation == "weighted_sum":
            return {"weighted_sum": weighted}
        if self.aggregation == "decayed_count":
            return {"decayed_count": total}
        if now is not None:
            # ``now`` scales every weight alike, which the mean and the std do not see; relative to
            # the latest timestamp the weights cannot all underflow to 0 however far ``now`` is
            w = self.weights(len(x), timestamps)
            total, weighted = float(w.sum()), float((w * x).sum())
        mean = weighted / total if total > 0 else math.nan
        if self.aggregation == "weighted_mean":
            return {"weighted_mean": mean}
        variance = float((w * (x - mean) ** 2).sum()) / total if total > 0 else math.nan
        return {"weighted_std": math.sqrt(variance) if variance >= 0 else math.nan}

    def compute(self, data: Any) -> FeatureDict:
        """:meth:`build` on a sequence of values, or on a mapping with ``values`` and optional ``timestamps``.

        Args:
            data: ``[x0, x1, ...]`` or ``{"values": [...], "timestamps": [...]}``.

        Returns:
            As :meth:`build`.
        """
        if isinstance(data, Mapping):
            if "values" not in data:
                msg = f"{_OWNER}: compute() got a mapping without 'values'; pass {{'values': [...], 'timestamps': ...}}"
                raise ConfigError(msg)
            return self.build(data["values"], data.get("timestamps"))
        return self.build(data)


def _floats(items: Sequence[Any], argument: str) -> np.ndarray:
    for v in items:
        if v is not None and (isinstance(v, str | bytes) or not isinstance(v, int | float | np.integer | np.floating)):
            msg = f"{_OWNER}: {argument} must be numbers, got {v!r}"
            raise (SchemaError if argument == "values" else ConfigError)(msg)
    return np.array([np.nan if v is None else v for v in items], dtype=np.float64)
