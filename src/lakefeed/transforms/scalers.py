"""Scalers: :class:`StandardScaler` and :class:`MinMaxScaler`, as scikit-learn computes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lakefeed.errors import ConfigError
from lakefeed.transforms.base import FeatureTransformer, decode_floats, encode_floats
from lakefeed.transforms.data import Chunk, numbers, numeric_column
from lakefeed.transforms.stats import Moments

__all__ = ["MinMaxScaler", "StandardScaler"]

_EPS = np.finfo(np.float64).eps


def _columns(chunk: Chunk, owner: str) -> list[Any]:
    """The chunk's columns, checked to be numeric, as they are (no copy)."""
    return [numeric_column(values, name, owner) for name, values in chunk.items()]


def _row_vector(names: list[str], row: Mapping[str, Any]) -> np.ndarray | None:
    """A row's inputs as one float64 vector, if they are all plain numbers or None (else None)."""
    values = [row[n] for n in names]
    if not all(v is None or (isinstance(v, int | float | np.integer | np.floating)) for v in values):
        return None  # the column-wise path gives the error or the conversion a batch would
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _row_values(y: np.ndarray, float32: np.ndarray) -> list[float]:
    """The row's float64 results as Python floats, rounded to float32 where the column is float32."""
    values: list[float] = y.tolist()
    if float32.any():
        narrow: list[float] = y.astype(np.float32).tolist()
        values = [n if f else v for v, n, f in zip(values, narrow, float32.tolist(), strict=True)]
    return values


def _float32_state(state: dict[str, Any], width: int) -> np.ndarray:
    return np.asarray(state.get("float32", [False] * width), dtype=bool)


def _nonzero(scale: np.ndarray, constant: np.ndarray | None = None) -> np.ndarray:
    """Scales of (near-)constant columns set to 1, as scikit-learn's ``_handle_zeros_in_scale``.

    With ``constant`` given, exactly those columns get 1 (a tiny but non-constant scale is
    kept, as scikit-learn keeps it); without it, scales below ``10 * eps``.
    """
    out = scale.copy()
    small = constant if constant is not None else out < 10 * _EPS
    out[small] = 1.0
    return out


class _MomentsScaler(FeatureTransformer):
    """Scalers fitted from per-column moments (count, mean, M2, min, max)."""

    def _begin(self, names: list[str]) -> Moments:
        return Moments(len(names))

    def _update(self, acc: Moments, chunk: Chunk) -> None:
        acc.update_columns(_columns(chunk, type(self).__name__))

    def _merge(self, left: Moments, right: Moments) -> Moments:
        return left.merge(right)


class StandardScaler(_MomentsScaler):
    """Z-score standardisation: ``(x - mean) / std`` per column, NaN-aware (NaNs pass through).

    Fitted attributes (as in scikit-learn): ``mean_``, ``var_``, ``scale_``, ``n_samples_seen_``.
    A constant column gets scale 1. Output is float64.

    Args:
        with_mean: Subtract the mean.
        with_std: Divide by the standard deviation (population, ``ddof=0``).
        columns: The columns to scale (default: the whole input).

    Example:
        >>> import numpy as np
        >>> StandardScaler().fit_transform(np.array([[1.0, 10.0], [3.0, 30.0]])).tolist()
        [[-1.0, -1.0], [1.0, 1.0]]
    """

    kind = "standard_scaler"

    def __init__(self, *, with_mean: bool = True, with_std: bool = True, columns: Sequence[str] | None = None) -> None:
        super().__init__(columns=columns)
        self.with_mean = bool(with_mean)
        self.with_std = bool(with_std)

    def _finish(self, acc: Moments) -> None:
        self.n_samples_seen_ = acc.count.copy()
        self.float32_ = acc.float32 & acc.seen  # float32 in, float32 out (computed in float64, rounded once)
        self.mean_ = np.where(acc.count > 0, acc.mean, np.nan)
        self.var_ = acc.variance()
        n = acc.count.astype(np.float64)
        with np.errstate(invalid="ignore"):
            # scikit-learn's test for a constant column: the variance is within float64 rounding
            constant = ~(self.var_ > n * _EPS * self.var_ + (n * self.mean_ * _EPS) ** 2)
        self.scale_ = _nonzero(np.sqrt(np.nan_to_num(self.var_, nan=0.0)), constant)

    def _apply(self, chunk: Chunk) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (name, values) in enumerate(chunk.items()):
            x = numbers(values, name, type(self).__name__)
            # float64 ufuncs convert each element as a row's float() does: batch == row, bit for bit
            y = np.subtract(x, self.mean_[i], dtype=np.float64) if self.with_mean else x.astype(np.float64)
            if self.with_std:
                np.divide(y, self.scale_[i], out=y)
            out[name] = y.astype(np.float32) if self.float32_[i] else y
        return out

    def _apply_row(self, names: list[str], row: Mapping[str, Any]) -> dict[str, Any] | None:
        x = _row_vector(names, row)
        if x is None:
            return None
        y = np.subtract(x, self.mean_, dtype=np.float64) if self.with_mean else x
        if self.with_std:
            y = np.divide(y, self.scale_)
        return dict(zip(names, _row_values(y, self.float32_), strict=True))

    def _params(self) -> dict[str, Any]:
        return {"with_mean": self.with_mean, "with_std": self.with_std}

    def _state(self) -> dict[str, Any]:
        return {
            "mean": encode_floats(self.mean_),
            "var": encode_floats(self.var_),
            "scale": encode_floats(self.scale_),
            "n_samples_seen": self.n_samples_seen_.tolist(),
            "float32": self.float32_.tolist(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.mean_ = decode_floats(state["mean"])
        self.var_ = decode_floats(state["var"])
        self.scale_ = decode_floats(state["scale"])
        self.n_samples_seen_ = np.asarray(state["n_samples_seen"], dtype=np.int64)
        self.float32_ = _float32_state(state, len(self.mean_))


class MinMaxScaler(_MomentsScaler):
    """Scale each column to ``feature_range``: ``x * scale_ + min_`` (scikit-learn's formula).

    Fitted attributes: ``data_min_``, ``data_max_``, ``data_range_``, ``scale_``, ``min_``.

    Args:
        feature_range: The target ``(low, high)``, low < high.
        clip: Clip outputs of values outside the fitted range to ``feature_range``.
        columns: The columns to scale (default: the whole input).

    Raises:
        ConfigError: ``feature_range`` is not an increasing pair.

    Example:
        >>> import numpy as np
        >>> MinMaxScaler(feature_range=(-1, 1)).fit_transform(np.array([[0.0], [5.0], [10.0]])).ravel().tolist()
        [-1.0, 0.0, 1.0]
    """

    kind = "min_max_scaler"

    def __init__(
        self, feature_range: tuple[float, float] = (0, 1), *, clip: bool = False, columns: Sequence[str] | None = None
    ) -> None:
        super().__init__(columns=columns)
        try:
            low, high = (float(v) for v in feature_range)
        except (TypeError, ValueError) as exc:
            msg = f"feature_range must be a pair (low, high), got {feature_range!r}"
            raise ConfigError(msg) from exc
        if not (np.isfinite(low) and np.isfinite(high)):
            msg = f"feature_range must be finite numbers, got {feature_range!r}; e.g. (0, 1)"
            raise ConfigError(msg)
        if not low < high:
            msg = f"feature_range must have low < high, got {feature_range!r}; e.g. (0, 1)"
            raise ConfigError(msg)
        self.feature_range = (low, high)
        self.clip = bool(clip)

    def _finish(self, acc: Moments) -> None:
        empty = acc.count == 0
        self.data_min_ = np.where(empty, np.nan, acc.min)
        self.data_max_ = np.where(empty, np.nan, acc.max)
        self.data_range_ = self.data_max_ - self.data_min_
        low, high = self.feature_range
        self.scale_ = (high - low) / _nonzero(np.nan_to_num(self.data_range_, nan=0.0))
        self.min_ = low - self.data_min_ * self.scale_
        self.float32_ = acc.float32 & acc.seen

    def _apply(self, chunk: Chunk) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for i, (name, values) in enumerate(chunk.items()):
            x = np.multiply(numbers(values, name, type(self).__name__), self.scale_[i], dtype=np.float64)
            x += self.min_[i]
            if self.clip:
                np.clip(x, self.feature_range[0], self.feature_range[1], out=x)
            out[name] = x.astype(np.float32) if self.float32_[i] else x
        return out

    def _apply_row(self, names: list[str], row: Mapping[str, Any]) -> dict[str, Any] | None:
        x = _row_vector(names, row)
        if x is None:
            return None
        y = np.multiply(x, self.scale_, dtype=np.float64)
        y += self.min_
        if self.clip:
            np.clip(y, self.feature_range[0], self.feature_range[1], out=y)
        return dict(zip(names, _row_values(y, self.float32_), strict=True))

    def _params(self) -> dict[str, Any]:
        return {"feature_range": list(self.feature_range), "clip": self.clip}

    def _state(self) -> dict[str, Any]:
        return {
            "data_min": encode_floats(self.data_min_),
            "data_max": encode_floats(self.data_max_),
            "float32": self.float32_.tolist(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.data_min_ = decode_floats(state["data_min"])
        self.data_max_ = decode_floats(state["data_max"])
        self.data_range_ = self.data_max_ - self.data_min_
        low, high = self.feature_range
        self.scale_ = (high - low) / _nonzero(np.nan_to_num(self.data_range_, nan=0.0))
        self.min_ = low - self.data_min_ * self.scale_
        self.float32_ = _float32_state(state, len(self.data_min_))
