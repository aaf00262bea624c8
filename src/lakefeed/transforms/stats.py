"""Mergeable statistics: fit chunk by chunk, merge across tasks and workers.

Each statistic has ``update`` (one chunk) and ``merge`` (another partial result), so a fit
streams a table of any size in bounded memory and in parallel. Counts, minima, maxima and
vocabularies come out exactly as from the whole array; means and variances are merged with
Chan et al.'s pairwise update (equal to a whole-array pass up to float64 rounding, ~1e-15
relative); quantiles are exact up to ``exact_limit`` values per column and come from a KLL
sketch (``datasketches``) beyond, within the sketch's stated rank error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Moments", "Quantiles", "Vocabulary"]


class Moments:
    """Count, mean, M2 (sum of squared deviations), min and max of each column, NaN-aware.

    Example:
        >>> import numpy as np
        >>> a, b = Moments(1), Moments(1)
        >>> a.update(np.array([[1.0], [2.0]])); b.update(np.array([[3.0], [np.nan]]))
        >>> m = a.merge(b)
        >>> int(m.count[0]), float(m.mean[0]), float(m.variance()[0]), float(m.max[0])
        (3, 2.0, 0.6666666666666666, 3.0)
    """

    def __init__(self, width: int) -> None:
        self.count = np.zeros(width, dtype=np.int64)
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.min = np.full(width, np.inf)
        self.max = np.full(width, -np.inf)
        self.seen = np.zeros(width, dtype=bool)
        """Columns that appeared in at least one chunk."""
        self.float32 = np.ones(width, dtype=bool)
        """Columns that were float32 (or narrower floats) in every chunk they appeared in."""

    def update(self, x: np.ndarray) -> None:
        """Add the rows of a ``[rows, width]`` array (NaN values are skipped)."""
        self.update_columns([x[:, j] for j in range(x.shape[1])])

    def update_columns(self, columns: Sequence[Any]) -> None:
        """Add one chunk given as columns (numeric numpy or Arrow arrays; NaN and nulls are skipped).

        Each column is reduced by Arrow's kernels straight from its own type (a float32 column
        is never copied to float64), then merged in.
        """
        chunk = Moments(len(columns))
        for j, column in enumerate(columns):
            parts = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            part = Moments(1)
            for arr in parts:
                stats = Moments(1)
                stats.count[0], stats.mean[0], stats.m2[0], stats.min[0], stats.max[0] = _column_moments(arr)
                part = part.merge(stats)
            chunk.count[j], chunk.mean[j], chunk.m2[j] = part.count[0], part.mean[0], part.m2[0]
            chunk.min[j], chunk.max[j] = part.min[0], part.max[0]
            chunk.seen[j] = True
            chunk.float32[j] = _is_float32(column)
        merged = self.merge(chunk)
        self.count, self.mean, self.m2 = merged.count, merged.mean, merged.m2
        self.min, self.max = merged.min, merged.max
        self.seen, self.float32 = merged.seen, merged.float32

    def merge(self, other: Moments) -> Moments:
        """The statistics of both parts together (Chan, Golub and LeVeque's pairwise update)."""
        out = Moments(len(self.count))
        n = self.count + other.count
        safe = np.maximum(n, 1)
        delta = other.mean - self.mean
        out.count = n
        out.mean = np.where(
            self.count == 0, other.mean, np.where(other.count == 0, self.mean, self.mean + delta * (other.count / safe))
        )
        both = (self.count > 0) & (other.count > 0)  # an empty side adds nothing (and delta**2 may overflow)
        out.m2 = self.m2 + other.m2 + np.where(both, delta * (delta * (self.count * other.count / safe)), 0.0)
        out.min = np.minimum(self.min, other.min)
        out.max = np.maximum(self.max, other.max)
        out.seen = self.seen | other.seen
        out.float32 = np.where(self.seen, self.float32, True) & np.where(other.seen, other.float32, True)
        return out

    def variance(self, ddof: int = 0) -> np.ndarray:
        """Per-column variance (NaN for a column with no values)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > ddof, self.m2 / np.maximum(self.count - ddof, 1), np.nan)


def _is_float32(column: Any) -> bool:
    if isinstance(column, np.ndarray):
        return bool(column.dtype.kind == "f" and column.dtype.itemsize <= 4)
    t = column.type
    return bool(pa.types.is_float32(t) or pa.types.is_float16(t))


def _column_moments(values: Any) -> tuple[int, float, float, float, float]:
    """(count, mean, M2, min, max) of one numeric column, skipping nulls and NaN."""
    arr = values if isinstance(values, pa.Array) else pa.array(np.asarray(values))
    if pa.types.is_boolean(arr.type):
        arr = arr.cast(pa.uint8())
    n = len(arr) - arr.null_count
    if n == 0:
        return 0, 0.0, 0.0, np.inf, -np.inf
    mean = pc.mean(arr).as_py()
    if pa.types.is_floating(arr.type) and not np.isfinite(mean):
        is_nan: Any = pc.is_nan(arr)
        nan: Any = pc.fill_null(is_nan, False)
        finite_or_inf = pc.invert(nan)
        arr = arr.filter(finite_or_inf)
        n = len(arr) - arr.null_count
        if n == 0:
            return 0, 0.0, 0.0, np.inf, -np.inf
        mean = pc.mean(arr).as_py()
    m2 = pc.variance(arr, ddof=0).as_py() * n
    if arr.null_count == 0:
        view = arr.to_numpy(zero_copy_only=False)
        return n, float(mean), float(m2), float(view.min()), float(view.max())
    bounds = pc.min_max(arr)
    return n, float(mean), float(m2), float(bounds["min"].as_py()), float(bounds["max"].as_py())


class Vocabulary:
    """How often each value of a categorical column occurs (nulls counted as ``None``).

    Example:
        >>> import pyarrow as pa
        >>> v = Vocabulary(); v.update(pa.array(["a", "b", "a", None]))
        >>> dict(v.merge(Vocabulary.of({"b": 2})).counts)
        {'a': 2, 'b': 3, None: 1}
    """

    def __init__(self) -> None:
        self.counts: Counter[Any] = Counter()

    @classmethod
    def of(cls, counts: dict[Any, int]) -> Vocabulary:
        """A vocabulary with the given counts."""
        v = cls()
        v.counts.update(counts)
        return v

    def update(self, values: pa.Array[Any]) -> None:
        """Count the values of one chunk (in Arrow, without a Python loop over rows)."""
        if len(values) == 0:
            return
        counted = pc.value_counts(values)
        for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True):
            self.counts[value] += int(count or 0)

    def merge(self, other: Vocabulary) -> Vocabulary:
        """Both vocabularies' counts added."""
        out = Vocabulary()
        out.counts = self.counts + other.counts
        return out


class Quantiles:
    """Values of one column for quantiles: exact up to ``exact_limit`` values, a KLL sketch beyond.

    Args:
        exact_limit: Keep the values themselves while there are at most this many.
        k: The KLL sketch's accuracy parameter (200: about 1.3% normalized rank error).

    Example:
        >>> import numpy as np
        >>> q = Quantiles(); q.update(np.arange(101.0))
        >>> q.quantiles([0.0, 0.5, 1.0]).tolist(), q.exact
        ([0.0, 50.0, 100.0], True)
    """

    def __init__(self, *, exact_limit: int = 100_000, k: int = 200) -> None:
        from datasketches import kll_doubles_sketch

        self.exact_limit = exact_limit
        self.sketch = kll_doubles_sketch(k)
        self.values: list[np.ndarray] | None = []
        self.count = 0

    @property
    def exact(self) -> bool:
        """True while the quantiles are computed from every value."""
        return self.values is not None

    def update(self, x: np.ndarray) -> None:
        """Add the non-NaN values of a numeric vector."""
        x = np.asarray(x, dtype=np.float64)
        x = x[~np.isnan(x)]
        if x.size == 0:
            return
        self.count += int(x.size)
        self.sketch.update(np.ascontiguousarray(x, dtype=np.float64))
        if self.values is not None:
            if self.count <= self.exact_limit:
                self.values.append(x.copy())
            else:
                self.values = None

    def merge(self, other: Quantiles) -> Quantiles:
        """Both parts' values together."""
        out = Quantiles(exact_limit=self.exact_limit, k=self.sketch.k)
        out.count = self.count + other.count
        out.sketch.merge(self.sketch)
        out.sketch.merge(other.sketch)
        if self.values is not None and other.values is not None and out.count <= self.exact_limit:
            out.values = self.values + other.values
        else:
            out.values = None
        return out

    def rank_error(self) -> float:
        """The largest error of a quantile's rank (0 while exact)."""
        return 0.0 if self.exact else float(self.sketch.normalized_rank_error(False))

    def quantiles(self, qs: list[float] | np.ndarray) -> np.ndarray:
        """The quantiles at ``qs`` (in [0, 1]); exact ones as ``np.percentile(..., 'averaged_inverted_cdf')``."""
        levels = np.asarray(qs, dtype=np.float64)
        if self.count == 0:
            return np.full(levels.shape, np.nan)
        if self.values is not None:
            return _exact_quantiles(np.concatenate(self.values), levels)
        return np.asarray(self.sketch.get_quantiles(levels), dtype=np.float64)


def _exact_quantiles(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``np.percentile(values, levels * 100, method="averaged_inverted_cdf")``, also with infinities.

    numpy interpolates ``inf - inf`` into NaN (with a warning). Here infinities stand in as the
    largest (smallest) finite value, so finite values give numpy's result bit for bit, and a
    quantile that draws on an infinity is that infinity: the same percentile of an indicator of
    the infinities (which sort to the same ends) tells which do.
    """
    percents = levels * 100

    def percentile(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # values near the float64 limits
            return np.asarray(np.percentile(x, percents, method="averaged_inverted_cdf"), dtype=np.float64)

    if np.isfinite(values).all():
        return percentile(values)
    finite = values[np.isfinite(values)]
    top, bottom = (float(finite.max()), float(finite.min())) if finite.size else (0.0, 0.0)
    out = percentile(np.where(values == np.inf, top, np.where(values == -np.inf, bottom, values)))
    high = percentile((values == np.inf).astype(np.float64)) > 0
    low = percentile(-(values == -np.inf).astype(np.float64)) < 0
    out[high] = np.inf
    out[low] = -np.inf
    out[high & low] = np.nan
    return out
