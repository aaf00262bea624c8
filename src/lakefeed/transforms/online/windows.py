"""Sliding windows over a sequence: :class:`SlidingWindowAggregator`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lakefeed.errors import ConfigError, SchemaError
from lakefeed.transforms.online.base import FeatureDict, OnlineFeatureComputer, check_positive_int

__all__ = ["BUILTIN_AGGREGATIONS", "SlidingWindowAggregator"]

_OWNER = "SlidingWindowAggregator"


def _count(w: np.ndarray) -> np.ndarray:
    result: np.ndarray = (~np.isnan(w)).sum(axis=1)
    return result


BUILTIN_AGGREGATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "count": _count,
    "first": lambda w: w[:, 0],
    "last": lambda w: w[:, -1],
    "max": lambda w: w.max(axis=1),
    "mean": lambda w: w.mean(axis=1),
    "median": lambda w: np.median(w, axis=1),
    "min": lambda w: w.min(axis=1),
    "range": lambda w: w.max(axis=1) - w.min(axis=1),
    "std": lambda w: w.std(axis=1),
    "sum": lambda w: w.sum(axis=1),
    "var": lambda w: w.var(axis=1),
}
"""Vectorised aggregations, by name: each maps a ``(windows, window_size)`` array to one value per window.

``count`` counts the non-NaN values; ``std`` and ``var`` are population statistics (``ddof=0``);
the others are numpy's, so a NaN in a window makes them NaN.
"""


class SlidingWindowAggregator(OnlineFeatureComputer):
    """Aggregates over windows of ``window_size`` consecutive values, advancing ``step_size`` at a time.

    Window ``i`` holds ``values[i * step_size : i * step_size + window_size]``. Only full windows
    are produced: ``len(values) < window_size`` gives none, and values after the last full
    window are not aggregated. With ``step_size=1`` the windows are those ending at positions
    ``window_size - 1, window_size, ...``, as ``pandas.Series.rolling(window_size)`` without
    partial windows (``min_periods=window_size``); with a larger step, every ``step_size``-th of them.

    Args:
        window_size: Values per window (> 0).
        agg_functions: Output name -> aggregation: a callable taking the window as a list of the
            original values, or the name of a vectorised built-in (:data:`BUILTIN_AGGREGATIONS`:
            count, first, last, max, mean, median, min, range, std, sum, var), which needs numbers
            (None counts as NaN).
        step_size: Positions between window starts (> 0).

    Raises:
        ConfigError: For a bad size or step, an empty or unknown aggregation.

    Example:
        >>> agg = SlidingWindowAggregator(3, {"avg": "mean", "top": max}, step_size=2)
        >>> agg.aggregate([1, 2, 3, 4, 5, 6, 7])
        [{'avg': 2.0, 'top': 3}, {'avg': 4.0, 'top': 5}, {'avg': 6.0, 'top': 7}]
        >>> agg.compute([1, 2, 3, 4])  # the latest full window: [2, 3, 4]
        {'avg': 3.0, 'top': 4}
    """

    def __init__(
        self,
        window_size: int,
        agg_functions: Mapping[str, Callable[[list[Any]], Any] | str],
        step_size: int = 1,
    ) -> None:
        self.window_size = check_positive_int(
            window_size, argument="window_size", owner=_OWNER, fix="e.g. window_size=7 for 7 values per window"
        )
        self.step_size = check_positive_int(
            step_size, argument="step_size", owner=_OWNER, fix="use step_size=1 for a window ending at every value"
        )
        if not isinstance(agg_functions, Mapping) or not agg_functions:
            msg = (
                f"{_OWNER}: agg_functions must be a non-empty dict of output name -> callable or built-in name, "
                f"got {agg_functions!r}; e.g. {{'avg': 'mean', 'top': max}}"
            )
            raise ConfigError(msg)
        for name, agg in agg_functions.items():
            if not isinstance(name, str):
                msg = f"{_OWNER}: agg_functions keys are output names and must be str, got {name!r}"
                raise ConfigError(msg)
            if isinstance(agg, str) and agg not in BUILTIN_AGGREGATIONS:
                msg = (
                    f"{_OWNER}: agg_functions[{name!r}] = {agg!r} is not a built-in aggregation; "
                    f"use one of {sorted(BUILTIN_AGGREGATIONS)} or a callable"
                )
                raise ConfigError(msg)
            if not isinstance(agg, str) and not callable(agg):
                msg = f"{_OWNER}: agg_functions[{name!r}] = {agg!r} is neither a callable nor a built-in name"
                raise ConfigError(msg)
        self.agg_functions = dict(agg_functions)

    def num_windows(self, length: int) -> int:
        """How many full windows ``length`` values give.

        Example:
            >>> SlidingWindowAggregator(3, {"s": "sum"}, step_size=2).num_windows(7)
            3
        """
        return 0 if length < self.window_size else (length - self.window_size) // self.step_size + 1

    def aggregate(self, values: Sequence[Any] | np.ndarray) -> list[FeatureDict]:
        """Aggregate every full window of ``values``.

        Args:
            values: The sequence, oldest first (a list, tuple or 1-d numpy array).

        Returns:
            One dict per window, in order, with one entry per ``agg_functions`` name.

        Raises:
            SchemaError: A built-in aggregation meets values that are not numbers.
        """
        items = list(values)
        count = self.num_windows(len(items))
        if count == 0:
            return []
        columns: dict[str, list[Any]] = {}
        builtin = [name for name, agg in self.agg_functions.items() if isinstance(agg, str)]
        if builtin:
            windows = sliding_window_view(self._numbers(items), self.window_size)[:: self.step_size]
            for name in builtin:
                agg = self.agg_functions[name]
                columns[name] = BUILTIN_AGGREGATIONS[str(agg)](windows).tolist()
        starts = range(0, count * self.step_size, self.step_size)
        for name, agg in self.agg_functions.items():
            if not isinstance(agg, str):
                columns[name] = [agg(items[s : s + self.window_size]) for s in starts]
        return [{name: columns[name][i] for name in self.agg_functions} for i in range(count)]

    def compute(self, data: Any) -> FeatureDict:
        """The aggregates of the latest full window (the last ``window_size`` values).

        Args:
            data: The sequence of values, oldest first.

        Returns:
            One entry per ``agg_functions`` name; an empty dict with fewer than ``window_size`` values.
        """
        items = list(data)
        if len(items) < self.window_size:
            return {}
        return SlidingWindowAggregator(self.window_size, self.agg_functions).aggregate(items[-self.window_size :])[0]

    @staticmethod
    def _numbers(items: list[Any]) -> np.ndarray:
        bad = next((v for v in items if v is not None and (isinstance(v, str | bytes) or not _is_number(v))), None)
        if bad is not None:
            msg = (
                f"{_OWNER}: built-in aggregations need numbers, got {bad!r}; convert the values or pass a "
                "callable aggregation"
            )
            raise SchemaError(msg)
        return np.array([np.nan if v is None else v for v in items], dtype=np.float64)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating)
