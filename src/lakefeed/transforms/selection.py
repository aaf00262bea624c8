"""The seed's array utilities: :class:`FeatureNormalizer` (missing values, outliers) and :class:`FeatureSelector`."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np

from lakefeed.errors import ConfigError, SchemaError
from lakefeed.transforms.data import numeric, to_chunk

__all__ = ["FeatureNormalizer", "FeatureSelector"]


def _matrix(X: Any, owner: str) -> np.ndarray:
    chunk = to_chunk(X)
    if not chunk:
        msg = f"{owner} got an input with no columns"
        raise SchemaError(msg)
    return np.column_stack([numeric(v, n, owner) for n, v in chunk.items()])


def _check_k(k: int, width: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= width:
        msg = f"k must be an int in [1, {width}] (the number of features), got {k!r}"
        raise ConfigError(msg)


class FeatureNormalizer:
    """Fill missing values and tame outliers in a numeric array (numpy, pandas or Arrow in; float64 numpy out).

    Example:
        >>> import numpy as np
        >>> FeatureNormalizer.handle_missing_values(np.array([[1.0], [np.nan], [3.0]])).ravel().tolist()
        [1.0, 2.0, 3.0]
    """

    @staticmethod
    def handle_missing_values(
        X: Any,
        strategy: Literal["mean", "median", "most_frequent", "constant", "zero"] = "mean",
        fill_value: float | None = None,
    ) -> np.ndarray:
        """Replace NaN/null per column by the column's mean, median, most frequent value or ``fill_value``.

        The same as scikit-learn's ``SimpleImputer`` with ``keep_empty_features=True`` (a column
        with no values at all is filled with 0, or ``fill_value`` for ``"constant"``).

        Args:
            X: Rows x features.
            strategy: ``"mean"``, ``"median"``, ``"most_frequent"`` (smallest on ties), ``"constant"``
                (``fill_value``) or ``"zero"``.
            fill_value: The value for ``"constant"``.

        Raises:
            ConfigError: An unknown strategy, or ``"constant"`` without ``fill_value``.
        """
        x = _matrix(X, "FeatureNormalizer").copy()
        missing = np.isnan(x)
        if strategy == "constant":
            if isinstance(fill_value, bool) or not isinstance(fill_value, int | float | np.integer | np.floating):
                msg = f"strategy='constant' needs a number as fill_value, got {fill_value!r}; e.g. fill_value=0.0"
                raise ConfigError(msg)
            fills = np.full(x.shape[1], float(fill_value))
        elif strategy == "zero":
            fills = np.zeros(x.shape[1])
        elif strategy in ("mean", "median"):
            with np.errstate(invalid="ignore"), _quiet():
                fills = np.nanmean(x, axis=0) if strategy == "mean" else np.nanmedian(x, axis=0)
            fills = np.nan_to_num(fills, nan=0.0)
        elif strategy == "most_frequent":
            fills = np.array([_mode(x[~missing[:, j], j]) for j in range(x.shape[1])])
        else:
            msg = f"strategy must be 'mean', 'median', 'most_frequent', 'constant' or 'zero', got {strategy!r}"
            raise ConfigError(msg)
        rows, cols = np.nonzero(missing)
        x[rows, cols] = fills[cols]
        return x

    @staticmethod
    def handle_outliers(X: Any, method: Literal["iqr", "zscore"] = "iqr", threshold: float = 3.0) -> np.ndarray:
        """Clip each column to its inlier range (winsorising; no row is dropped, NaN stays NaN).

        ``"iqr"``: ``[Q1 - threshold * IQR, Q3 + threshold * IQR]`` (quartiles by linear
        interpolation, as ``np.nanpercentile``); ``"zscore"``: ``mean ± threshold * std``
        (population std).

        Raises:
            ConfigError: An unknown method or a threshold that is not positive.

        Example:
            >>> import numpy as np
            >>> x = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
            >>> FeatureNormalizer.handle_outliers(x, "iqr", 1.5).ravel().tolist()
            [1.0, 2.0, 3.0, 4.0, 7.0]
        """
        if isinstance(threshold, bool) or not (
            isinstance(threshold, int | float | np.integer | np.floating) and threshold > 0
        ):
            msg = f"threshold must be a positive number, got {threshold!r}"
            raise ConfigError(msg)
        x = _matrix(X, "FeatureNormalizer").copy()
        with np.errstate(invalid="ignore"), _quiet():
            if method == "iqr":
                q1, q3 = np.nanpercentile(x, [25, 75], axis=0)
                low, high = q1 - threshold * (q3 - q1), q3 + threshold * (q3 - q1)
            elif method == "zscore":
                mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
                low, high = mean - threshold * std, mean + threshold * std
            else:
                msg = f"method must be 'iqr' or 'zscore', got {method!r}"
                raise ConfigError(msg)
        clipped: np.ndarray = np.clip(x, low, high)
        return clipped


class FeatureSelector:
    """Pick the ``k`` most useful features of an array; returns their column indices, best first.

    Example:
        >>> import numpy as np
        >>> X = np.array([[0.0, 1.0, 5.0], [0.0, 2.0, 0.0], [0.0, 3.0, 9.0]])
        >>> FeatureSelector.select_by_variance(X, 2)
        [2, 1]
    """

    @staticmethod
    def select_by_variance(X: Any, k: int) -> list[int]:
        """The ``k`` columns of largest variance (population variance, NaN ignored; ties: lower index first).

        The variances are those of scikit-learn's ``VarianceThreshold.variances_``.
        """
        x = _matrix(X, "FeatureSelector")
        _check_k(k, x.shape[1])
        with np.errstate(invalid="ignore"), _quiet():
            variances = np.nan_to_num(np.nanvar(x, axis=0), nan=-np.inf)
        return [int(i) for i in np.argsort(-variances, kind="stable")[:k]]

    @staticmethod
    def select_by_correlation(X: Any, y: Any, k: int) -> list[int]:
        """The ``k`` columns with the largest absolute Pearson correlation with ``y`` (constant columns: 0).

        Without missing values the correlations are scikit-learn's ``r_regression``; a NaN in a
        column or in ``y`` leaves that row out of that column's correlation (pairwise-complete,
        as pandas' ``DataFrame.corrwith``), so one missing value does not zero a feature.

        Raises:
            SchemaError: ``y`` does not have one value per row of ``X``, or is not numeric.
        """
        x = _matrix(X, "FeatureSelector")
        _check_k(k, x.shape[1])
        try:
            target = np.asarray(y, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            msg = f"y must be numbers (one target per row), got {type(y).__name__}: {exc}"
            raise SchemaError(msg) from exc
        if target.shape[0] != x.shape[0]:
            msg = f"y has {target.shape[0]} values but X has {x.shape[0]} rows; pass one target per row"
            raise SchemaError(msg)
        r = np.zeros(x.shape[1])
        for j in range(x.shape[1]):
            ok = ~(np.isnan(x[:, j]) | np.isnan(target))
            xj, yj = x[ok, j], target[ok]
            if xj.size == 0:
                continue
            xc, yc = xj - xj.mean(), yj - yj.mean()
            with np.errstate(invalid="ignore", divide="ignore"):
                r[j] = (xc @ yc) / (np.sqrt(xc @ xc) * np.sqrt(yc @ yc))
        score = np.nan_to_num(np.abs(r), nan=0.0)
        return [int(i) for i in np.argsort(-score, kind="stable")[:k]]


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's "All-NaN slice" / "Mean of empty slice" warnings (a column of NaN is handled)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _mode(values: np.ndarray) -> float:
    if values.size == 0:
        return 0.0
    uniq, counts = np.unique(values, return_counts=True)
    return float(uniq[np.argmax(counts)])
