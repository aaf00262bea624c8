"""Bucketing: :class:`Bucketizer`, with explicit, quantile or uniform boundaries."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from lakefeed.errors import ConfigError, SchemaError
from lakefeed.transforms.base import FeatureTransformer, decode_floats, encode_floats
from lakefeed.transforms.data import Chunk, numbers, numeric_column
from lakefeed.transforms.stats import Moments, Quantiles

__all__ = ["Bucketizer"]


def _splits(values: Sequence[float], what: str) -> np.ndarray:
    msg = f"{what} must be a non-empty, strictly increasing list of finite numbers, got {values!r}"
    if isinstance(values, str | bytes):
        raise ConfigError(msg)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(msg) from exc
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all() or (np.diff(arr) <= 0).any():
        raise ConfigError(msg)
    return arr


def _bucket(splits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """How many split points are ``<= x``, per element (``searchsorted(..., side="right")``)."""
    if len(splits) > 16:
        return np.searchsorted(splits, x, side="right").astype(np.int64)
    values = x if x.dtype == np.float64 else x.astype(np.float64)  # compared exactly, as float64
    out = np.zeros(len(values), dtype=np.int64)
    for split in splits:  # a few vectorised comparisons beat a binary search per element
        out += values >= split
    return out


class Bucketizer(FeatureTransformer):
    """Bucket numbers: the bucket of ``x`` is the number of split points ``<= x`` (int64).

    Split points come from ``boundaries`` (one list for every column, or a dict per column) or
    are fitted: ``strategy="quantile"`` puts ``n_buckets`` buckets of equal counts (scikit-learn's
    ``KBinsDiscretizer(strategy="quantile")``; exact up to ``exact_limit`` values per column,
    a KLL sketch beyond, within its rank error), ``"uniform"`` equal widths between min and max.
    As in scikit-learn, edges closer than 1e-8 are merged, so a column may get fewer buckets.
    NaN goes to an extra bucket after the last (``n_buckets_[i]``).

    Args:
        boundaries: Split points (the bucket edges between buckets), or a dict column → list.
        n_buckets: Buckets to fit when ``boundaries`` is None.
        strategy: ``"quantile"`` or ``"uniform"``.
        exact_limit: Values per column kept for exact quantiles before switching to the sketch.
        columns: The columns to bucket (default: the whole input).

    Raises:
        ConfigError: Neither or both of ``boundaries`` and ``n_buckets``; bad boundaries.
        SchemaError: (in fit) ``strategy="uniform"`` on a column with infinite values.

    Example:
        >>> import numpy as np
        >>> x = [[-5.0], [0.0], [7.0], [10.0], [np.nan]]
        >>> Bucketizer(boundaries=[0.0, 10.0]).fit(x).transform(x).ravel().tolist()
        [0, 1, 1, 2, 3]
    """

    kind = "bucketizer"

    def __init__(
        self,
        boundaries: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
        n_buckets: int | None = None,
        *,
        strategy: Literal["quantile", "uniform"] = "quantile",
        exact_limit: int = 100_000,
        columns: Sequence[str] | None = None,
    ) -> None:
        super().__init__(columns=columns)
        if (boundaries is None) == (n_buckets is None):
            msg = "give Bucketizer either boundaries=[...] (split points) or n_buckets=N (fitted), not both or neither"
            raise ConfigError(msg)
        if n_buckets is not None and (isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 2):
            msg = f"n_buckets must be an int >= 2, got {n_buckets!r}"
            raise ConfigError(msg)
        if isinstance(exact_limit, bool) or not isinstance(exact_limit, int) or exact_limit < 0:
            msg = f"exact_limit must be an int >= 0 (values kept for exact quantiles), got {exact_limit!r}"
            raise ConfigError(msg)
        if strategy not in ("quantile", "uniform"):
            msg = f"strategy must be 'quantile' or 'uniform', got {strategy!r}"
            raise ConfigError(msg)
        self.boundaries: list[float] | dict[str, list[float]] | None = None
        if isinstance(boundaries, Mapping):
            self.boundaries = {str(k): _splits(v, f"boundaries[{k!r}]").tolist() for k, v in boundaries.items()}
        elif boundaries is not None:
            self.boundaries = _splits(boundaries, "boundaries").tolist()
        self.n_buckets = n_buckets
        self.strategy = strategy
        self.exact_limit = exact_limit

    def _begin(self, names: list[str]) -> dict[str, Any]:
        return {
            "names": list(names),
            "moments": Moments(len(names)),
            "quantiles": [Quantiles(exact_limit=self.exact_limit) for _ in names],
        }

    def _update(self, acc: dict[str, Any], chunk: Chunk) -> None:
        columns = [numeric_column(v, n, type(self).__name__) for n, v in chunk.items()]
        if self.boundaries is not None:
            return
        if self.strategy == "uniform":
            acc["moments"].update_columns(columns)
        else:
            for q, (name, values) in zip(acc["quantiles"], chunk.items(), strict=True):
                q.update(numbers(values, name, type(self).__name__))

    def _merge(self, left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
        return {
            "names": left["names"],
            "moments": left["moments"].merge(right["moments"]),
            "quantiles": [a.merge(b) for a, b in zip(left["quantiles"], right["quantiles"], strict=True)],
        }

    def _finish(self, acc: dict[str, Any]) -> None:
        names: list[str] = acc["names"]  # the input's own names, also without columns=[...]
        self.rank_error_ = 0.0
        if self.boundaries is not None:
            self.splits_ = [np.asarray(self._explicit(n, i), dtype=np.float64) for i, n in enumerate(names)]
        else:
            n = int(self.n_buckets or 2)
            if self.strategy == "uniform":
                m = acc["moments"]
                bounds = zip(names, m.min, m.max, m.count, strict=True)
                infinite = [c for c, lo, hi, k in bounds if k > 0 and not np.isfinite([lo, hi]).all()]
                if infinite:
                    msg = (
                        f"column(s) {infinite} hold infinite values: Bucketizer(strategy='uniform') needs a finite"
                        " min and max; use strategy='quantile' or boundaries=[...]"
                    )
                    raise SchemaError(msg)
                edges = [
                    np.linspace(lo, hi, n + 1) if k > 0 else np.full(n + 1, np.nan)
                    for lo, hi, k in zip(m.min, m.max, m.count, strict=True)
                ]
            else:
                levels = np.linspace(0, 100, n + 1) / 100
                edges = [q.quantiles(levels) for q in acc["quantiles"]]
                self.rank_error_ = max((q.rank_error() for q in acc["quantiles"]), default=0.0)
            # as scikit-learn: drop edges that add a bucket narrower than 1e-8 (NaN edges of a
            # column without values, and repeated infinities, go too)
            with np.errstate(invalid="ignore"):
                kept = [e[np.ediff1d(e, to_begin=np.inf) > 1e-8] for e in edges]
            self.splits_ = [e[1:-1] for e in kept]
        self.n_buckets_ = [len(s) + 1 for s in self.splits_]
        self._split_lists = [s.tolist() for s in self.splits_]

    def _explicit(self, name: str, i: int) -> list[float]:
        if isinstance(self.boundaries, dict):
            if name not in self.boundaries:
                msg = f"boundaries has no entry for column {name!r}; it has {sorted(self.boundaries)}"
                raise ConfigError(msg)
            return self.boundaries[name]
        return list(self.boundaries or [])

    def _apply(self, chunk: Chunk) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (name, values) in enumerate(chunk.items()):
            x = numbers(values, name, type(self).__name__)
            bucket = _bucket(self.splits_[i], x)
            if x.dtype.kind == "f":
                bucket[np.isnan(x)] = self.n_buckets_[i]
            out[name] = bucket
        return out

    def _apply_row(self, names: list[str], row: Mapping[str, Any]) -> dict[str, Any] | None:
        values = [row[n] for n in names]
        if not all(v is None or isinstance(v, int | float | np.integer | np.floating) for v in values):
            return None  # the column-wise path gives the error or the conversion a batch would
        out: dict[str, Any] = {}
        for i, (name, v) in enumerate(zip(names, values, strict=True)):
            x = np.nan if v is None else float(v)  # float64, as a batch column converts it
            # Python float comparisons are IEEE float64 ones: the count of splits <= x, as _bucket
            out[name] = self.n_buckets_[i] if x != x else bisect.bisect_right(self._split_lists[i], x)
        return out

    def _params(self) -> dict[str, Any]:
        return {
            "boundaries": self.boundaries,
            "n_buckets": self.n_buckets,
            "strategy": self.strategy,
            "exact_limit": self.exact_limit,
        }

    def _state(self) -> dict[str, Any]:
        return {"splits": [encode_floats(s) for s in self.splits_], "rank_error": self.rank_error_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.splits_ = [decode_floats(s) for s in state["splits"]]
        self.n_buckets_ = [len(s) + 1 for s in self.splits_]
        self._split_lists = [s.tolist() for s in self.splits_]
        self.rank_error_ = float(state["rank_error"])
