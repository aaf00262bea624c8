"""Minimum and maximum over many index ranges of one array at once (a sparse table).

The event windows use it offline; online, monotonic stacks give the same numbers because
both return an element of the window, chosen by the same rules: NaN in a range makes the
result NaN, and -0.0 counts as +0.0 (zeros are returned as +0.0).
"""

from __future__ import annotations

import numpy as np

__all__ = ["window_extrema"]


def window_extrema(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The minimum and maximum of ``values[lo[i]:hi[i]]`` for each ``i``.

    Builds ``floor(log2(longest range)) + 1`` levels of pairwise minima and maxima, then
    answers each range with two overlapping power-of-two blocks: ``O(n log w)`` time and
    memory for ``n`` values and ranges up to ``w`` long, all in numpy.

    Args:
        values: float64 values.
        lo: Range starts (int64).
        hi: Range ends, exclusive (int64, ``lo <= hi``).

    Returns:
        ``(minima, maxima)``: float64; NaN for an empty range or one holding a NaN.

    Example:
        >>> v = np.array([3.0, -0.0, 7.0, np.nan, 1.0])
        >>> mins, maxs = window_extrema(v, np.array([0, 1, 2, 4]), np.array([3, 3, 4, 4]))
        >>> mins.tolist(), maxs.tolist()
        ([0.0, 0.0, nan, nan], [7.0, 7.0, nan, nan])
    """
    x = np.asarray(values, dtype=np.float64) + 0.0  # -0.0 + 0.0 is +0.0
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    nan = np.isnan(x)
    lows = [np.where(nan, np.inf, x)]
    highs = [np.where(nan, -np.inf, x)]
    length = hi - lo
    longest = int(length.max()) if len(length) else 0
    level = 1
    while (1 << level) <= longest:
        half = 1 << (level - 1)
        lows.append(np.minimum(lows[-1][:-half], lows[-1][half:]))
        highs.append(np.maximum(highs[-1][:-half], highs[-1][half:]))
        level += 1

    minima = np.full(len(lo), np.nan)
    maxima = np.full(len(lo), np.nan)
    nonempty = length > 0
    levels = np.zeros(len(lo), dtype=np.int64)
    levels[nonempty] = np.frexp(length[nonempty].astype(np.float64))[1] - 1  # floor(log2(length))
    for k in np.unique(levels[nonempty]).tolist():
        rows = np.flatnonzero(nonempty & (levels == k))
        first, second = lo[rows], hi[rows] - (1 << k)
        minima[rows] = np.minimum(lows[k][first], lows[k][second])
        maxima[rows] = np.maximum(highs[k][first], highs[k][second])
    prefix = np.zeros(len(x) + 1, dtype=np.int64)
    np.cumsum(nan, out=prefix[1:])
    has_nan = (prefix[hi] - prefix[lo]) > 0
    minima[has_nan] = np.nan
    maxima[has_nan] = np.nan
    return minima, maxima
