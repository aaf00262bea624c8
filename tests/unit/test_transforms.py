"""lakefeed.transforms transformers against scikit-learn, numpy and brute force; fitting on tables; errors.

The pipeline is in ``test_pipeline.py``; row/batch bit-parity in ``tests/property/test_transform_parity.py``.
"""

from __future__ import annotations

import json
import math
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import preprocessing as skp
from sklearn.feature_selection import VarianceThreshold, r_regression
from sklearn.impute import SimpleImputer

import lakefeed as lf
import lakefeed.transforms as lt
from lakefeed.errors import (
    ColumnNotFoundError,
    ConfigError,
    NotFittedError,
    SchemaError,
    UnknownCategoryError,
)
from lakefeed.tables.base import ScanTask
from lakefeed.transforms import base as tbase
from lakefeed.transforms import data as tdata
from lakefeed.transforms.base import FeatureTransformer
from lakefeed.transforms.stats import Quantiles

TOL: dict[str, Any] = {"rtol": 1e-6, "atol": 1e-6}
KINDS = ["numpy", "pandas", "arrow_table", "arrow_batch"]


# -- helpers ---------------------------------------------------------------------------------------


def as_kind(columns: dict[str, Any], kind: str) -> Any:
    """The same named columns as numpy (columns x0.. in this order), pandas, Arrow table or batch."""
    if kind == "numpy":
        return np.column_stack([np.asarray(v) for v in columns.values()])
    if kind == "pandas":
        return pd.DataFrame({k: np.asarray(v) for k, v in columns.items()})
    table = pa.table({k: pa.array(v) for k, v in columns.items()})
    return table if kind == "arrow_table" else table.to_batches()[0]


def kind_of(obj: Any) -> str:
    if isinstance(obj, np.ndarray):
        return "numpy"
    if isinstance(obj, pd.DataFrame):
        return "pandas"
    if isinstance(obj, pa.Table):
        return "arrow_table"
    if isinstance(obj, pa.RecordBatch):
        return "arrow_batch"
    return type(obj).__name__


def column(obj: Any, name: str) -> np.ndarray:
    if isinstance(obj, pd.DataFrame):
        return np.asarray(obj[name].to_numpy())
    return np.asarray(obj.column(name).to_numpy(zero_copy_only=False))


def column_list(obj: Any) -> list[str]:
    if isinstance(obj, pd.DataFrame):
        return [str(c) for c in obj.columns]
    return list(obj.schema.names)


def ipc_bytes(batch: pa.RecordBatch | pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write(batch)
    return bytes(sink.getvalue())


def kbins(x: np.ndarray, n_bins: int, strategy: str = "quantile") -> skp.KBinsDiscretizer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "bins whose width are too small", constant columns
        return skp.KBinsDiscretizer(
            n_bins=n_bins,
            encode="ordinal",
            strategy=strategy,
            quantile_method="averaged_inverted_cdf",
            subsample=None,
        ).fit(x)


RNG = np.random.default_rng(20240611)
N = 500
FLOATS = np.column_stack(
    [
        RNG.normal(50, 10, N),
        RNG.exponential(3, N),
        np.full(N, 7.25),  # constant
        RNG.uniform(-1e-3, 1e-3, N),  # small scale
    ]
)
WITH_NAN = FLOATS.copy()
WITH_NAN[RNG.random(FLOATS.shape) < 0.1] = np.nan
WITH_NAN[:, 2][RNG.random(N) < 0.5] = np.nan


# -- input kinds -----------------------------------------------------------------------------------

CATS = ["red", "green", "blue", "red", None, "green", "red", "blue"] * 5
NUMS = [float(v) for v in np.linspace(-3.0, 11.0, len(CATS))]
INTS = [int(v) for v in RNG.integers(0, 4, len(CATS))]

MAKERS: dict[str, tuple[Callable[..., FeatureTransformer], str]] = {
    "standard": (lt.StandardScaler, "num"),
    "minmax": (lambda **kw: lt.MinMaxScaler((-1, 1), **kw), "num"),
    "bucketizer": (lambda **kw: lt.Bucketizer(n_buckets=4, **kw), "num"),
    "onehot": (lambda **kw: lt.OneHotEncoder(handle_unknown="ignore", **kw), "cat"),
    "indexer": (lambda **kw: lt.StringIndexer(min_frequency=6, **kw), "cat"),
    "hash": (lambda **kw: lt.HashBucket(10, **kw), "cat"),
}


def _reference_input(which: str) -> dict[str, Any]:
    if which == "num":
        return {"a": NUMS, "b": [v * v for v in NUMS]}
    return {"a": CATS, "b": INTS}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(MAKERS))
def test_whole_array_mode_takes_every_kind_and_returns_numpy(name: str, kind: str) -> None:
    make, which = MAKERS[name]
    cols = _reference_input(which)
    if which == "cat" and kind == "numpy":
        cols = {"a": [c if c is not None else "none" for c in CATS]}  # one dtype for a numpy matrix
    expected = make().fit_transform(pa.table(cols))  # Arrow as the common reference
    X = as_kind(cols, kind)
    got = make().fit(X).transform(X)
    assert isinstance(got, np.ndarray)
    assert got.ndim == 2
    assert got.shape[0] == len(CATS)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(make().fit_transform(X), expected)


@pytest.mark.parametrize("kind", ["pandas", "arrow_table", "arrow_batch"])
@pytest.mark.parametrize("name", list(MAKERS))
def test_named_columns_keep_the_input_kind(name: str, kind: str) -> None:
    make, which = MAKERS[name]
    cols = {"id": list(range(len(CATS))), **_reference_input(which), "z": ["keep"] * len(CATS)}
    X = as_kind(cols, kind)
    t = make(columns=["a"]).fit(X)
    out = t.transform(X)
    assert kind_of(out) == kind
    outputs = t.output_names()
    assert column_list(out) == ["id", *outputs, "b", "z"]  # outputs where the input column was
    np.testing.assert_array_equal(column(out, "id"), np.arange(len(CATS)))
    assert list(column(out, "z")) == ["keep"] * len(CATS)
    # the same values as the whole-array mode on that one column
    whole = make().fit(pa.table({"a": cols["a"]})).transform(pa.table({"a": cols["a"]}))
    np.testing.assert_array_equal(np.column_stack([column(out, o) for o in outputs]), whole)


def test_named_columns_on_numpy_and_dicts() -> None:
    X = np.column_stack([NUMS, [2 * v for v in NUMS], [1.0] * len(NUMS)])
    out = lt.StandardScaler(columns=["x1"]).fit(X).transform(X)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out[:, [0, 2]], X[:, [0, 2]])
    np.testing.assert_allclose(out[:, 1], skp.StandardScaler().fit_transform(X[:, [1]]).ravel(), **TOL)
    d = {"a": NUMS, "s": ["x"] * len(NUMS)}
    out_d = lt.MinMaxScaler(columns=["a"]).fit(d).transform(d)
    assert isinstance(out_d, dict)
    assert list(out_d) == ["a", "s"]
    np.testing.assert_allclose(out_d["a"], skp.MinMaxScaler().fit_transform(np.c_[NUMS]).ravel(), **TOL)


def test_pandas_series_and_index_and_dtypes_are_kept() -> None:
    s = pd.Series([1.0, 2.0, 3.0], name="v")
    out = lt.StandardScaler(columns=["v"]).fit_transform(s)
    np.testing.assert_allclose(out["v"].to_numpy(), [-1.224744871391589, 0.0, 1.224744871391589])
    unnamed = pd.Series([1.0, 2.0, 3.0])  # named x0, as a 1-D array's column
    out = lt.StandardScaler(columns=["x0"]).fit_transform(unnamed)
    np.testing.assert_allclose(out["x0"].to_numpy(), [-1.224744871391589, 0.0, 1.224744871391589])
    df = pd.DataFrame(
        {
            "a": [1.0, 2.0, 3.0],
            "cat": pd.Categorical(["x", "y", "x"]),
            "n": pd.array([1, None, 3], dtype="Int64"),
        },
        index=[10, 10, 30],  # duplicate labels: nothing may align on the index
    )
    out = lt.StandardScaler(columns=["a"]).fit_transform(df)
    assert list(out.index) == [10, 10, 30]
    assert isinstance(out["cat"].dtype, pd.CategoricalDtype)
    assert str(out["n"].dtype) == "Int64"
    # nullable integers are numbers (pd.NA is missing)
    out = lt.StandardScaler(columns=["n"]).fit_transform(df)
    np.testing.assert_allclose(out["n"].to_numpy(dtype=float), [-1.0, np.nan, 1.0])


# -- scalers against scikit-learn ------------------------------------------------------------------


@pytest.mark.parametrize("data", [FLOATS, WITH_NAN, FLOATS.astype(np.float32)], ids=["plain", "nan", "float32"])
@pytest.mark.parametrize(("with_mean", "with_std"), [(True, True), (False, True), (True, False)])
def test_standard_scaler_matches_sklearn(data: np.ndarray, with_mean: bool, with_std: bool) -> None:
    ref = skp.StandardScaler(with_mean=with_mean, with_std=with_std).fit(data)
    got = lt.StandardScaler(with_mean=with_mean, with_std=with_std).fit(data)
    if with_std:
        np.testing.assert_allclose(got.mean_, ref.mean_, rtol=1e-12)
        np.testing.assert_allclose(got.var_, ref.var_, rtol=1e-9, atol=1e-25)
        np.testing.assert_allclose(got.scale_, ref.scale_, rtol=1e-9)
    np.testing.assert_array_equal(got.n_samples_seen_, np.broadcast_to(ref.n_samples_seen_, (data.shape[1],)))
    out = got.transform(data)
    assert out.dtype == data.dtype  # float32 in, float32 out (as scikit-learn), computed in float64
    # lakefeed computes in float64 and rounds once: the reference is sklearn on the float64 values
    tol = TOL if data.dtype == np.float64 else {"rtol": 1e-6, "atol": 1e-6}
    np.testing.assert_allclose(out, ref.transform(data.astype(np.float64)), **tol)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(data))
    if data.dtype == np.float32:  # and close to sklearn's own float32 output
        np.testing.assert_allclose(out, ref.transform(data), rtol=1e-4, atol=1e-4)


def test_standard_scaler_constant_and_tiny_columns_as_sklearn() -> None:
    X = np.array([[0.1, 0.0, 3.0], [0.1, 1e-16, 3.0], [0.1, 2e-16, np.nan]] * 3)
    ref = skp.StandardScaler().fit(X)
    got = lt.StandardScaler().fit(X)
    np.testing.assert_allclose(got.scale_, ref.scale_, rtol=1e-9)
    assert got.scale_[0] == 1.0
    assert got.scale_[2] == 1.0
    np.testing.assert_allclose(got.transform(X), ref.transform(X), **TOL)


def test_standard_scaler_all_nan_column() -> None:
    X = np.array([[1.0, np.nan], [3.0, np.nan]])
    got = lt.StandardScaler().fit(X)
    assert np.isnan(got.mean_[1])
    assert got.scale_[1] == 1.0
    assert got.n_samples_seen_.tolist() == [2, 0]
    assert np.isnan(got.transform(X)[:, 1]).all()


@pytest.mark.parametrize("data", [FLOATS, WITH_NAN, FLOATS.astype(np.float32)], ids=["plain", "nan", "float32"])
@pytest.mark.parametrize("feature_range", [(0, 1), (-3.5, 5)])
@pytest.mark.parametrize("clip", [False, True])
def test_minmax_scaler_matches_sklearn(data: np.ndarray, feature_range: tuple[float, float], clip: bool) -> None:
    ref = skp.MinMaxScaler(feature_range=feature_range, clip=clip).fit(data)
    got = lt.MinMaxScaler(feature_range, clip=clip).fit(data)
    np.testing.assert_array_equal(got.data_min_, ref.data_min_.astype(np.float64))
    np.testing.assert_array_equal(got.data_max_, ref.data_max_.astype(np.float64))
    np.testing.assert_allclose(got.scale_, ref.scale_, rtol=1e-6)
    wider = np.vstack([data, data.max(axis=0) * 2 + 1, data.min(axis=0) * 2 - 1])  # out of the fitted range
    ref64 = skp.MinMaxScaler(feature_range=feature_range, clip=clip).fit(data.astype(np.float64))
    np.testing.assert_allclose(got.transform(wider), ref64.transform(wider.astype(np.float64)), **TOL)
    if data.dtype == np.float32:
        np.testing.assert_allclose(got.transform(wider), ref.transform(wider), rtol=1e-4, atol=1e-4)


# -- encoders --------------------------------------------------------------------------------------


def test_onehot_matches_sklearn_with_nulls_and_ints() -> None:
    X = pa.table({"color": CATS, "n": INTS})
    got = lt.OneHotEncoder().fit(X)
    ref_obj = np.array([CATS, INTS], dtype=object).T
    ref = skp.OneHotEncoder(sparse_output=False).fit(ref_obj)
    assert got.categories_[0] == list(ref.categories_[0])  # sorted, None last
    assert got.categories_[1] == sorted(set(INTS))
    np.testing.assert_array_equal(got.transform(X), ref.transform(ref_obj))
    named = lt.OneHotEncoder(columns=["color", "n"]).fit(X)
    ref_named = skp.OneHotEncoder(sparse_output=False).fit(
        pd.DataFrame({"color": pd.Series(CATS, dtype=object), "n": INTS})
    )
    assert named.output_names() == list(ref_named.get_feature_names_out())
    out = named.transform(X)
    assert out.schema.names == named.output_names()
    assert all(out.schema.field(n).type == pa.float64() for n in out.schema.names)


def test_onehot_handle_unknown() -> None:
    train = pa.table({"c": ["a", "b", "a"]})
    test = pa.table({"c": ["b", "zzz", None, "a"]})
    ignore = lt.OneHotEncoder("ignore").fit(train)
    ref = skp.OneHotEncoder(sparse_output=False, handle_unknown="ignore").fit(np.array([["a"], ["b"], ["a"]]))
    expected = ref.transform(np.array([["b"], ["zzz"], ["qqq"], ["a"]], dtype=object))  # None: unseen too
    np.testing.assert_array_equal(ignore.transform(test), expected)
    strict = lt.OneHotEncoder("error", columns=["c"]).fit(train)
    with pytest.raises(UnknownCategoryError, match=r"column 'c' has categories \['zzz'\] not seen in fit"):
        strict.transform(pa.table({"c": ["a", "zzz"]}))
    with pytest.raises(UnknownCategoryError, match=r"\[None\] not seen"):
        strict.transform(test.filter(pa.array([False, False, True, False])))
    with pytest.raises(UnknownCategoryError, match="'zzz'"):
        strict.transform_row({"c": "zzz"})


def test_onehot_row_and_batch_types_match_fitted_type() -> None:
    enc = lt.OneHotEncoder(columns=["n"]).fit(pa.table({"n": pa.array([1, 2, 2], pa.int32())}))
    assert enc.transform_row({"n": 2}) == {"n_1": 0.0, "n_2": 1.0}
    out = enc.transform(pa.table({"n": pa.array([2, 1], pa.int64())}))  # cast to the fitted int32
    assert out.to_pydict() == {"n_1": [0.0, 1.0], "n_2": [1.0, 0.0]}
    with pytest.raises(SchemaError, match=r"column 'n' is string, but OneHotEncoder was fitted on int32"):
        enc.transform(pa.table({"n": ["x"]}))
    with pytest.raises(SchemaError, match="fitted on int32"):
        enc.transform_row({"n": "x"})


def test_string_indexer_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    values = [str(v) for v in rng.zipf(1.6, 3000) % 40]
    values[::97] = [None] * len(values[::97])  # type: ignore[list-item]
    counts = Counter(v for v in values if v is not None)
    for min_frequency, max_categories in [(1, None), (5, None), (5, 7), (10_000, None)]:
        idx = lt.StringIndexer(min_frequency=min_frequency, max_categories=max_categories).fit(values)
        vocab = sorted((v for v, c in counts.items() if c >= min_frequency), key=lambda v: (-counts[v], v))
        vocab = vocab[:max_categories]
        assert idx.vocabulary_ == [vocab]
        assert idx.vocabulary_size() == len(vocab) + 1
        lookup = {v: i + 1 for i, v in enumerate(vocab)}
        probe = [*values[:200], "never-seen", None]
        expected = [lookup.get(v, 0) if v is not None else 0 for v in probe]
        got = idx.transform(probe)
        assert got.dtype == np.int64
        assert got.ravel().tolist() == expected
    strict = lt.StringIndexer(num_oov_indices=0, columns=["v"]).fit({"v": ["a", "b", "b"]})
    assert strict.transform({"v": ["b", "a"]})["v"].tolist() == [0, 1]
    assert strict.vocabulary_size("v") == 2
    with pytest.raises(UnknownCategoryError, match=r"column 'v' has values \['c'\] outside the vocabulary"):
        strict.transform({"v": ["a", "c"]})
    with pytest.raises(ColumnNotFoundError, match="no column 'w'"):
        strict.vocabulary_size("w")


def test_hash_bucket_is_xxh64() -> None:
    strings = ["user-1", "", "ü", None, "user-1"]
    hb = lt.HashBucket(1000, seed=17, columns=["s"]).fit({"s": strings})
    expected = [xxhash.xxh64_intdigest(v.encode("utf-8"), seed=17) % 1000 if v is not None else 1000 for v in strings]
    assert hb.transform({"s": strings})["s"].tolist() == expected
    ints = [0, -1, 2**62, 5]
    hi = lt.HashBucket(7, columns=["i"]).fit({"i": ints})
    expected = [xxhash.xxh64_intdigest(v.to_bytes(8, "little", signed=True)) % 7 for v in ints]
    assert hi.transform({"i": np.array(ints)})["i"].tolist() == expected
    assert [hi.transform_row({"i": v})["i"] for v in ints] == expected
    assert lt.stable_hash(True, 0) == lt.stable_hash(1, 0)
    assert lt.stable_hash("abc", 0) == xxhash.xxh64_intdigest(b"abc", seed=0)


@pytest.mark.parametrize("make", [lt.OneHotEncoder, lt.StringIndexer, lambda **kw: lt.HashBucket(4, **kw)])
@pytest.mark.parametrize(
    "values",
    [
        pa.array([1.5, 2.5]),
        pa.array([[1], [2]]),
        pa.array([1, 2], pa.date32()),
        pa.array([b"a", b"b"]),
    ],
    ids=["float", "list", "date", "binary"],
)
def test_encoders_reject_types_without_exact_json_categories(make: Any, values: pa.Array[Any]) -> None:
    with pytest.raises(SchemaError, match=r"column 'c' is .*takes strings, integers or booleans"):
        make(columns=["c"]).fit(pa.table({"c": values}))


def test_encoders_accept_dictionary_large_string_and_all_null() -> None:
    dict_col = pa.array(["a", "b", "a"]).dictionary_encode()
    enc = lt.OneHotEncoder(columns=["c"]).fit(pa.table({"c": dict_col}))
    assert enc.categories_ == [["a", "b"]]
    out = enc.transform(pa.table({"c": pa.array(["b", "a"], pa.large_string())}))
    assert out.to_pydict() == {"c_a": [0.0, 1.0], "c_b": [1.0, 0.0]}
    nulls = lt.OneHotEncoder(columns=["c"]).fit(pa.table({"c": pa.nulls(3)}))
    assert nulls.categories_ == [[None]]
    assert nulls.transform_row({"c": None}) == {"c_None": 1.0}


def test_onehot_output_name_clashes_are_errors() -> None:
    with pytest.raises(SchemaError, match=r"\['c_None'\] twice: column_category names clash"):
        lt.OneHotEncoder(columns=["c"]).fit(pa.table({"c": ["None", None]}))  # the string 'None' and a null
    with pytest.raises(SchemaError, match=r"\['a_b_c'\] twice"):
        lt.OneHotEncoder(columns=["a", "a_b"]).fit(pa.table({"a": ["b_c"], "a_b": ["c"]}))
    enc = lt.OneHotEncoder(columns=["a"]).fit(pa.table({"a": ["b"]}))
    with pytest.raises(SchemaError, match=r"OneHotEncoder outputs \['a_b'\], which the input already has"):
        enc.transform(pa.table({"a": ["b"], "a_b": [5]}))
    with pytest.raises(SchemaError, match=r"outputs \['a_b'\]"):
        enc.transform_row({"a": "b", "a_b": 5})


# -- buckets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_buckets", [2, 3, 4, 7, 10, 20])
@pytest.mark.parametrize("shape", ["normal", "ties", "small"])
def test_bucketizer_quantile_matches_kbins(n_buckets: int, shape: str) -> None:
    rng = np.random.default_rng(n_buckets)
    if shape == "normal":
        X = np.column_stack([rng.normal(size=1000), rng.exponential(size=1000), np.full(1000, 3.0)])
    elif shape == "ties":  # many equal edges: narrow buckets are dropped as scikit-learn drops them
        X = np.column_stack([rng.integers(0, 5, 999), rng.poisson(1.0, 999)]).astype(np.float64)
    else:
        X = rng.normal(size=(13, 2))
    ref = kbins(X, n_buckets)
    got = lt.Bucketizer(n_buckets=n_buckets).fit(X)
    for j in range(X.shape[1]):
        np.testing.assert_array_equal(got.splits_[j], ref.bin_edges_[j][1:-1])
    assert got.n_buckets_ == [int(v) for v in ref.n_bins_]
    assert got.rank_error_ == 0.0
    probe = np.vstack([X, X + 1e-9, X - 1e-9, np.full((1, X.shape[1]), 1e9), np.full((1, X.shape[1]), -1e9)])
    out = got.transform(probe)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, ref.transform(probe).astype(np.int64))


def test_bucketizer_float32_and_uniform() -> None:
    X32 = RNG.normal(size=(301, 2)).astype(np.float32)
    got = lt.Bucketizer(n_buckets=5).fit(X32)
    # lakefeed works in float64: the reference is KBinsDiscretizer on the same values as float64
    ref = kbins(X32.astype(np.float64), 5)
    np.testing.assert_array_equal(got.transform(X32), ref.transform(X32.astype(np.float64)))
    uni = lt.Bucketizer(n_buckets=6, strategy="uniform").fit(FLOATS[:, :2])
    ref_u = kbins(FLOATS[:, :2], 6, "uniform")
    for j in range(2):
        np.testing.assert_allclose(uni.splits_[j], ref_u.bin_edges_[j][1:-1], rtol=1e-12)
    np.testing.assert_array_equal(uni.transform(FLOATS[:, :2]), ref_u.transform(FLOATS[:, :2]))


def test_bucketizer_nan_bucket_and_nan_ignored_in_fit() -> None:
    x = np.array([1.0, 2.0, np.nan, 3.0, 4.0, np.nan])
    got = lt.Bucketizer(n_buckets=2).fit(x)
    ref = kbins(x[~np.isnan(x)].reshape(-1, 1), 2)
    np.testing.assert_array_equal(got.splits_[0], ref.bin_edges_[0][1:-1])
    assert got.transform(x).ravel().tolist() == [0, 0, 2, 1, 1, 2]  # NaN: bucket n_buckets_ (2)
    assert got.transform([np.inf, -np.inf]).ravel().tolist() == [1, 0]
    empty = lt.Bucketizer(n_buckets=3).fit(np.array([np.nan, np.nan]))
    assert empty.n_buckets_ == [1]
    assert empty.transform([5.0, np.nan]).ravel().tolist() == [0, 1]


def averaged_inverted_cdf(values: np.ndarray, n_buckets: int) -> list[float]:
    """Brute force: the interior quantile edges at k / n_buckets, averaging at whole ranks (inf + inf = inf).

    The rank ``n * q`` is computed in float64 from scikit-learn's levels, as numpy computes it (so
    ``3 * (6 / 9)`` is just under 2 and takes the next value rather than an average).
    """
    x = sorted(float(v) for v in values)
    n = len(x)
    edges = []
    for k in range(1, n_buckets):
        q = np.linspace(0, 100, n_buckets + 1)[k] / 100
        virtual = n * q - 1
        below = math.floor(virtual)
        lo, hi = x[min(max(below, 0), n - 1)], x[min(max(below + 1, 0), n - 1)]
        edges.append((lo + hi) / 2 if virtual == below else hi)
    return edges


def test_averaged_inverted_cdf_reference_is_numpys() -> None:
    x = RNG.normal(size=101)
    for n_buckets in (2, 3, 7, 10):
        expected = np.percentile(x, np.linspace(0, 100, n_buckets + 1), method="averaged_inverted_cdf")[1:-1]
        np.testing.assert_allclose(averaged_inverted_cdf(x, n_buckets), expected, rtol=1e-15)


def test_bucketizer_quantiles_with_infinities() -> None:
    x = RNG.normal(size=1000)
    x[[3, 500]] = np.inf
    x[7] = -np.inf
    got = lt.Bucketizer(n_buckets=4).fit(x)  # no warning (inf - inf) and not one bucket
    np.testing.assert_allclose(got.splits_[0], averaged_inverted_cdf(x, 4), rtol=1e-15)
    assert got.transform([np.inf, -np.inf]).ravel().tolist() == [3, 0]
    many = np.array([1.0, 2.0, 3.0, *[np.inf] * 5])
    fitted = lt.Bucketizer(n_buckets=4).fit(many)
    assert fitted.splits_[0].tolist() == [2.5]  # edges 2.5, inf, inf, inf: the repeated ones merge
    assert averaged_inverted_cdf(many, 4) == [2.5, np.inf, np.inf]
    low = np.array([-np.inf, -np.inf, 1.0, 2.0, 3.0, 4.0])  # edges -inf, -inf, 2.5, 4: interior splits stay finite
    assert lt.Bucketizer(n_buckets=3).fit(low).splits_[0].tolist() == [2.5]
    with pytest.raises(SchemaError, match=r"column\(s\) \['x0'\] hold infinite values: .*strategy='uniform'"):
        lt.Bucketizer(n_buckets=4, strategy="uniform").fit(x)
    empty = lt.Bucketizer(n_buckets=4, strategy="uniform").fit(np.array([[np.nan, 1.0], [np.nan, 2.0]]))
    assert empty.n_buckets_ == [1, 4]


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(-1e300, 1e300), st.sampled_from([np.inf, -np.inf, 0.0, 1.0])), min_size=1, max_size=40
    ),
    n_buckets=st.integers(2, 9),
)
def test_exact_quantiles_against_brute_force(values: list[float], n_buckets: int) -> None:
    q = Quantiles()
    q.update(np.array(values))
    got = q.quantiles(np.linspace(0, 100, n_buckets + 1) / 100)[1:-1]
    # the midpoint of two neighbours may cancel (-1 and -0.99999): its rounding error is relative
    # to the neighbours' magnitude, not to the tiny midpoint
    finite = np.abs(np.array(values)[np.isfinite(values)])
    scale = float(finite.max()) if finite.size else 0.0
    expected = averaged_inverted_cdf(np.array(values), n_buckets)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=max(1e-300, 4 * np.finfo(float).eps * scale))
    if np.isfinite(values).all():  # and numpy's own, bit for bit
        ref = np.percentile(values, np.linspace(0, 100, n_buckets + 1), method="averaged_inverted_cdf")[1:-1]
        assert got.tobytes() == ref.tobytes()


def test_bucketizer_explicit_boundaries_match_digitize() -> None:
    bounds = [-1.0, 0.0, 2.5, 10.0]
    x = np.concatenate([RNG.normal(0, 5, 200), bounds, np.nextafter(bounds, -np.inf)])
    got = lt.Bucketizer(boundaries=bounds).fit(x).transform(x).ravel()
    np.testing.assert_array_equal(got, np.digitize(x, bounds, right=False))
    per_col = lt.Bucketizer(boundaries={"a": [0.0], "b": [1.0, 2.0]}, columns=["a", "b"])
    out = per_col.fit({"a": [-1.0, 1.0], "b": [1.5, 2.0]}).transform({"a": [-1.0, 1.0], "b": [1.5, 2.0]})
    assert out["a"].tolist() == [0, 1]
    assert out["b"].tolist() == [1, 2]
    # per-column boundaries also work without columns=[...] on named input
    whole = lt.Bucketizer(boundaries={"a": [0.0], "b": [1.0, 2.0]}).fit(pd.DataFrame({"a": [1.0], "b": [3.0]}))
    assert whole.transform(pd.DataFrame({"a": [1.0], "b": [3.0]})).tolist() == [[1, 2]]
    assert per_col.n_buckets_ == [2, 3]


# -- FeatureNormalizer and FeatureSelector -----------------------------------------------------------

IMPUTE_X = np.array(
    [
        [1.0, np.nan, 5.0, np.nan],
        [2.0, 4.0, np.nan, np.nan],
        [np.nan, 4.0, 5.0, np.nan],
        [2.0, 1.0, 7.0, np.nan],
        [9.0, 1.0, 7.0, np.nan],
    ]
)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("strategy", "fill_value"), [("mean", None), ("median", None), ("most_frequent", None), ("constant", -2.5)]
)
def test_handle_missing_values_matches_simple_imputer(kind: str, strategy: str, fill_value: float | None) -> None:
    X = as_kind({f"x{i}": IMPUTE_X[:, i] for i in range(4)}, kind)
    got = lt.FeatureNormalizer.handle_missing_values(X, strategy, fill_value)  # type: ignore[arg-type]
    ref = SimpleImputer(strategy=strategy, fill_value=fill_value, keep_empty_features=True).fit_transform(IMPUTE_X)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, **TOL)
    zero = lt.FeatureNormalizer.handle_missing_values(X, "zero")
    np.testing.assert_array_equal(zero, np.nan_to_num(IMPUTE_X, nan=0.0))


def test_handle_missing_values_with_nulls_in_arrow() -> None:
    t = pa.table({"a": [1, None, 3], "b": [True, None, False]})
    got = lt.FeatureNormalizer.handle_missing_values(t, "mean")
    np.testing.assert_array_equal(got, [[1.0, 1.0], [2.0, 0.5], [3.0, 0.0]])


@pytest.mark.parametrize("threshold", [0.5, 1.5, 3.0])
def test_handle_outliers_against_pandas(threshold: float) -> None:
    X = WITH_NAN.copy()
    X[:5, 0] = [1e6, -1e6, 400.0, -300.0, 1e3]
    frame = pd.DataFrame(X)
    q1, q3 = frame.quantile(0.25), frame.quantile(0.75)  # pandas skips NaN; linear interpolation
    iqr = frame.clip(q1 - threshold * (q3 - q1), q3 + threshold * (q3 - q1), axis=1).to_numpy()
    got = lt.FeatureNormalizer.handle_outliers(X, "iqr", threshold)
    np.testing.assert_allclose(got, iqr, **TOL)
    mean, std = frame.mean(), frame.std(ddof=0)
    z = frame.clip(mean - threshold * std, mean + threshold * std, axis=1).to_numpy()
    np.testing.assert_allclose(lt.FeatureNormalizer.handle_outliers(pa.table(frame), "zscore", threshold), z, **TOL)
    assert np.array_equal(np.isnan(got), np.isnan(X))


def test_select_by_variance_matches_variance_threshold() -> None:
    X = np.column_stack([RNG.normal(0, s, 300) for s in (1.0, 5.0, 0.1, 3.0, 2.0)])
    X[RNG.random(X.shape) < 0.05] = np.nan
    X = np.column_stack([X, np.full(300, np.nan)])  # no values: last
    variances = VarianceThreshold().fit(X[:, :5]).variances_
    order = [int(i) for i in np.argsort(-variances, kind="stable")]
    for k in range(1, 6):
        assert lt.FeatureSelector.select_by_variance(X, k) == order[:k]
    assert lt.FeatureSelector.select_by_variance(X, 6) == [*order, 5]
    assert lt.FeatureSelector.select_by_variance(pd.DataFrame(X), 2) == order[:2]
    ties = np.array([[0.0, 1.0, 0.0], [2.0, 3.0, 2.0]])
    assert lt.FeatureSelector.select_by_variance(ties, 3) == [0, 1, 2]  # ties: lower index first


def test_select_by_correlation_matches_r_regression() -> None:
    n = 400
    y = RNG.normal(size=n)
    X = np.column_stack([y * 0.1 + RNG.normal(size=n), -y + 0.2 * RNG.normal(size=n), RNG.normal(size=n), np.ones(n)])
    X = np.column_stack([X, 0.5 * y + RNG.normal(size=n)])
    r = np.zeros(X.shape[1])  # a constant column scores 0 (sklearn's own r_regression gives inf for ones)
    varying = [0, 1, 2, 4]
    r[varying] = r_regression(X[:, varying], y)
    order = [int(i) for i in np.argsort(-np.abs(r), kind="stable")]
    for k in range(1, 6):
        assert lt.FeatureSelector.select_by_correlation(X, y, k) == order[:k]
    assert lt.FeatureSelector.select_by_correlation(pa.table(pd.DataFrame(X)), pd.Series(y), 2) == order[:2]


def test_select_by_correlation_ignores_missing_pairwise() -> None:
    n = 200
    y = RNG.normal(size=n)
    X = np.column_stack([y + 0.01 * RNG.normal(size=n), RNG.normal(size=n), 0.3 * y + RNG.normal(size=n)])
    X[7, 0] = np.nan  # one missing value must not make the best feature worthless
    yy = y.copy()
    yy[11] = np.nan
    ref = pd.DataFrame(X).corrwith(pd.Series(yy)).abs()  # pandas: pairwise complete
    order = [int(i) for i in np.argsort(-ref.to_numpy(), kind="stable")]
    assert lt.FeatureSelector.select_by_correlation(X, yy, 3) == order == [0, 2, 1]


# -- fitting on tables -----------------------------------------------------------------------------

ROWS_PER_FILE = 40_000
FILES = 5


def _file(i: int) -> pa.Table:
    rng = np.random.default_rng(100 + i)
    a = rng.normal(10 * i, 1 + i, ROWS_PER_FILE)
    a[rng.random(ROWS_PER_FILE) < 0.01] = np.nan
    cats = np.array(["u", "v", "w", "x", f"only-in-{i}"])[rng.integers(0, 5, ROWS_PER_FILE)]
    return pa.table(
        {
            "a": a,
            "b": pa.array(rng.integers(-1000, 1000, ROWS_PER_FILE), pa.int64()),
            "c": pa.array([None if j % 101 == 0 else c for j, c in enumerate(cats.tolist())], pa.string()),
            "s": pa.array([f"text {j}" for j in range(ROWS_PER_FILE)], pa.string()),  # would trip a scaler
        }
    )


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    wh = lf.Warehouse(tmp_path_factory.mktemp("transforms"))
    t = wh.create_table("ns.t", _file(0))
    for i in range(1, FILES):
        t.append(_file(i))
    return t


@pytest.fixture(scope="module")
def memory() -> pa.Table:
    return pa.concat_tables([_file(i) for i in range(FILES)])


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Small fitting tasks (one per file), and a record of tasks, threads and the columns read."""
    monkeypatch.setattr(tdata, "FIT_TASK_BYTES", 1 << 16)
    seen: dict[str, Any] = {"parts": [], "threads": set(), "columns": set()}
    barrier = threading.Barrier(2, timeout=20)
    lock = threading.Lock()
    calls = [0]
    original = tdata.fit_chunks

    def fit_chunks(data: object, columns: Any, accumulate: Any, **kw: Any) -> list[Any]:
        def wrapped(chunks: Iterator[Any]) -> Any:
            with lock:
                calls[0] += 1
                first_two = calls[0] <= 2
            if first_two and tdata.input_kind(data) == "scan":
                barrier.wait()  # two tasks at once: fitting really runs in two threads
            seen["threads"].add(threading.current_thread().name)
            return accumulate(chunks)

        parts = original(data, columns, wrapped, **kw)
        seen["parts"].append(len(parts))
        return parts

    read = ScanTask.read

    def recording_read(task: ScanTask) -> Iterator[pa.RecordBatch]:
        for batch in read(task):
            seen["columns"].update(batch.schema.names)
            yield batch

    monkeypatch.setattr(tbase, "fit_chunks", fit_chunks)
    monkeypatch.setattr(ScanTask, "read", recording_read)
    return seen


def _multi_task(spy: dict[str, Any]) -> None:
    assert spy["parts"]
    assert all(p == FILES for p in spy["parts"])
    assert len(spy["threads"]) >= 2
    assert all(t.startswith("lakefeed-fit") for t in spy["threads"])


def test_scaler_fit_on_table_equals_in_memory(table: lf.Table, memory: pa.Table, spy: dict[str, Any]) -> None:
    got = lt.StandardScaler(columns=["a", "b"]).fit(table, num_threads=4)
    _multi_task(spy)
    assert spy["columns"] == {"a", "b"}  # only the needed columns are read from the files
    ref = lt.StandardScaler(columns=["a", "b"]).fit(memory)
    np.testing.assert_array_equal(got.n_samples_seen_, ref.n_samples_seen_)
    np.testing.assert_allclose(got.mean_, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(got.var_, ref.var_, rtol=1e-12)
    X = np.column_stack([memory.column("a").to_numpy(), memory.column("b").to_numpy().astype(np.float64)])
    sk = skp.StandardScaler().fit(X)
    np.testing.assert_array_equal(got.n_samples_seen_, sk.n_samples_seen_)
    np.testing.assert_allclose(got.mean_, sk.mean_, rtol=1e-12)
    np.testing.assert_allclose(got.var_, sk.var_, rtol=1e-12)
    mm = lt.MinMaxScaler(columns=["a", "b"]).fit(table.scan(columns=["a", "b", "s"]))
    np.testing.assert_array_equal(mm.data_min_, np.nanmin(X, axis=0))
    np.testing.assert_array_equal(mm.data_max_, np.nanmax(X, axis=0))


def test_whole_table_fit_reads_every_column(table: lf.Table) -> None:
    with pytest.raises(SchemaError, match=r"column 'c' is string, expected a number for StandardScaler"):
        lt.StandardScaler().fit(table)
    scaler = lt.StandardScaler().fit(table.scan(columns=["a", "b"]))
    assert scaler.input_names == ["a", "b"]


def test_encoders_fit_on_table_equal_in_memory(table: lf.Table, memory: pa.Table, spy: dict[str, Any]) -> None:
    onehot = lt.OneHotEncoder(columns=["c", "b"]).fit(table, num_threads=3)
    _multi_task(spy)
    ref = lt.OneHotEncoder(columns=["c", "b"]).fit(memory)
    assert onehot.categories_ == ref.categories_
    assert onehot.categories_[0] == [*sorted(set(memory.column("c").drop_null().to_pylist())), None]
    indexer = lt.StringIndexer(min_frequency=5, columns=["c"]).fit(table)
    assert indexer.vocabulary_ == lt.StringIndexer(min_frequency=5, columns=["c"]).fit(memory).vocabulary_
    counts = Counter(memory.column("c").drop_null().to_pylist())
    assert indexer.vocabulary_[0] == sorted((v for v, c in counts.items() if c >= 5), key=lambda v: (-counts[v], v))


def test_bucketizer_on_table_exact_under_limit(table: lf.Table, memory: pa.Table, spy: dict[str, Any]) -> None:
    got = lt.Bucketizer(n_buckets=7, exact_limit=10**6, columns=["a", "b"]).fit(table, num_threads=4)
    _multi_task(spy)
    assert got.rank_error_ == 0.0
    for j, name in enumerate(["a", "b"]):
        x = memory.column(name).to_numpy().astype(np.float64)
        x = x[~np.isnan(x)]
        np.testing.assert_array_equal(got.splits_[j], kbins(x.reshape(-1, 1), 7).bin_edges_[0][1:-1])


def test_bucketizer_on_table_sketch_within_rank_error(table: lf.Table, memory: pa.Table, spy: dict[str, Any]) -> None:
    n_buckets = 10
    got = lt.Bucketizer(n_buckets=n_buckets, exact_limit=1000, columns=["a", "b"]).fit(table, num_threads=4)
    _multi_task(spy)
    assert 0.0 < got.rank_error_ < 0.05
    levels = np.arange(1, n_buckets) / n_buckets
    for j, name in enumerate(["a", "b"]):
        x = np.sort(memory.column(name).to_numpy().astype(np.float64))
        x = x[~np.isnan(x)]
        splits = got.splits_[j]
        assert len(splits) == n_buckets - 1
        # the empirical rank of each boundary is within the stated error of its level
        low = np.searchsorted(x, splits, side="left") / x.size
        high = np.searchsorted(x, splits, side="right") / x.size
        assert (high >= levels - got.rank_error_).all(), high - levels
        assert (low <= levels + got.rank_error_).all(), low - levels
        # ...and of np.quantile's boundary at that level
        exact = np.quantile(x, levels)
        np.testing.assert_allclose(
            np.searchsorted(x, splits) / x.size, np.searchsorted(x, exact) / x.size, atol=got.rank_error_
        )


def test_fit_on_filtered_scan_equals_filtered_memory(table: lf.Table, memory: pa.Table) -> None:
    scan = table.scan(columns=["a"], filter=lf.col("b") > 500)
    got = lt.StandardScaler(columns=["a"]).fit(scan)
    ref = lt.StandardScaler(columns=["a"]).fit(memory.filter(pa.compute.greater(memory.column("b"), pa.scalar(500))))
    np.testing.assert_array_equal(got.n_samples_seen_, ref.n_samples_seen_)
    np.testing.assert_allclose(got.mean_, ref.mean_, rtol=1e-12)
    with pytest.raises(ColumnNotFoundError, match=r"\['c'\] not in the scan"):
        lt.StandardScaler(columns=["c"]).fit(scan)


def test_fit_on_a_scan_reads_its_pinned_snapshot(tmp_path: Path) -> None:
    t = lf.Warehouse(tmp_path).create_table("ns.pin", pa.table({"a": [1.0, 2.0]}))
    scan = t.scan()
    t.append(pa.table({"a": [100.0]}))
    assert lt.StandardScaler(columns=["a"]).fit(scan).mean_.tolist() == [1.5]
    assert lt.StandardScaler().fit(scan).n_samples_seen_.tolist() == [2]
    assert lt.StandardScaler(columns=["a"]).fit(t).n_samples_seen_.tolist() == [3]


def test_encoders_on_pandas_categoricals_and_bools() -> None:
    df = pd.DataFrame({"c": pd.Categorical(["x", "y", None, "x"]), "b": [True, False, True, True]})
    enc = lt.OneHotEncoder(columns=["c", "b"]).fit(df)
    assert enc.categories_ == [["x", "y", None], [False, True]]
    out = enc.transform(df)
    assert list(out.columns) == ["c_x", "c_y", "c_None", "b_False", "b_True"]
    assert out["c_None"].tolist() == [0.0, 0.0, 1.0, 0.0]
    assert enc.transform_row({"c": "y", "b": True}) == {
        "c_x": 0.0,
        "c_y": 1.0,
        "c_None": 0.0,
        "b_False": 0.0,
        "b_True": 1.0,
    }
    assert lt.StringIndexer(columns=["c"]).fit(df).vocabulary_ == [["x", "y"]]


def test_fit_progress_bar_does_not_disturb(table: lf.Table, capsys: pytest.CaptureFixture[str]) -> None:
    quiet = lt.MinMaxScaler(columns=["b"]).fit(table, progress=False)
    shown = lt.MinMaxScaler(columns=["b"]).fit(table, progress=True)
    np.testing.assert_array_equal(quiet.data_min_, shown.data_min_)
    captured = capsys.readouterr()
    shown_text = captured.out + captured.err
    assert "fitting MinMaxScaler" in shown_text
    assert f"{table.scan().count()}/{table.scan().count()}" in shown_text  # every row counted
    lt.MinMaxScaler(columns=["b"]).fit(table, progress=False)
    captured = capsys.readouterr()
    assert "fitting" not in captured.out + captured.err


# -- specs -----------------------------------------------------------------------------------------

SPEC_CASES: list[tuple[Callable[[], FeatureTransformer], dict[str, Any]]] = [
    (lambda: lt.StandardScaler(columns=["a", "n"]), {"a": [1.0, np.nan, 3.0], "n": [np.nan, np.nan, np.nan]}),
    (lambda: lt.MinMaxScaler((-2, 2), clip=True, columns=["a"]), {"a": [1.0, 5.0, 3.0]}),
    (lambda: lt.Bucketizer(n_buckets=3, columns=["a"]), {"a": [1.0, 2.0, 3.0, 4.0, 5.0]}),
    (lambda: lt.Bucketizer(boundaries={"a": [0.5]}, columns=["a"]), {"a": [0.0, 1.0]}),
    (lambda: lt.OneHotEncoder("ignore", columns=["c", "i"]), {"c": ["a", None, "b"], "i": [1, 2, 1]}),
    (lambda: lt.StringIndexer(min_frequency=2, columns=["c"]), {"c": ["a", "a", "b"]}),
    (lambda: lt.HashBucket(50, seed=3, columns=["c"]), {"c": ["a", "b", None]}),
    (lambda: lt.StandardScaler(), {"x0": [1.0, 4.0], "x1": [2.0, 2.0]}),
]


@pytest.mark.parametrize(("make", "cols"), SPEC_CASES)
def test_spec_round_trip_gives_identical_output(make: Callable[[], FeatureTransformer], cols: dict[str, Any]) -> None:
    batch = pa.RecordBatch.from_pydict(cols)
    t = make().fit(batch)
    text = json.dumps(t.to_spec(), allow_nan=False)  # strict JSON: non-finite floats as strings
    back = FeatureTransformer.from_spec(json.loads(text))
    assert type(back) is type(t)
    assert back.is_fitted
    assert repr(back) == repr(t)
    a, b = t.transform(batch), back.transform(batch)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        assert a.tobytes() == b.tobytes()
    else:
        assert ipc_bytes(a) == ipc_bytes(b)  # bit for bit, NaN included
    unfitted = FeatureTransformer.from_spec(make().to_spec())
    assert not unfitted.is_fitted


# -- errors ----------------------------------------------------------------------------------------


def test_not_fitted_errors() -> None:
    for t in (lt.StandardScaler(), lt.OneHotEncoder(columns=["c"]), lt.Bucketizer(n_buckets=2)):
        name = type(t).__name__
        with pytest.raises(NotFittedError, match=f"{name} is not fitted; call .fit"):
            t.transform(np.ones((2, 1)))
        with pytest.raises(NotFittedError, match=f"{name} is not fitted"):
            t.transform_row({"c": 1.0})
        with pytest.raises(NotFittedError, match=f"{name} is not fitted"):
            t.output_names()
    with pytest.raises(NotFittedError, match="StringIndexer is not fitted"):
        lt.StringIndexer().vocabulary_size()


def test_unknown_column_errors(table: lf.Table) -> None:
    data = pa.table({"a": [1.0, 2.0]})
    with pytest.raises(ColumnNotFoundError, match=r"column\(s\) \['zz'\] not in the input; it has \['a'\]"):
        lt.StandardScaler(columns=["zz"]).fit(data)
    with pytest.raises(ColumnNotFoundError, match=r"no column\(s\) \['zz'\]"):
        lt.StandardScaler(columns=["zz"]).fit(table)
    scaler = lt.StandardScaler(columns=["a"]).fit(data)
    with pytest.raises(ColumnNotFoundError, match=r"\['a'\] not in the input"):
        scaler.transform(pa.table({"b": [1.0]}))
    with pytest.raises(ColumnNotFoundError, match=r"row has no \['a'\] for StandardScaler"):
        scaler.transform_row({"b": 1.0})
    with pytest.raises(ConfigError, match="transform\\(\\) takes in-memory data"):
        scaler.transform(table)


def test_string_column_into_numeric_transformers() -> None:
    data = pa.table({"a": [1.0], "s": ["x"]})
    for t in (
        lt.StandardScaler(columns=["s"]),
        lt.MinMaxScaler(columns=["s"]),
        lt.Bucketizer(n_buckets=2, columns=["s"]),
    ):
        with pytest.raises(SchemaError, match=rf"column 's' is string, expected a number for {type(t).__name__}"):
            t.fit(data)
    fitted = lt.StandardScaler(columns=["a"]).fit(data)
    with pytest.raises(SchemaError, match="column 'a' is string"):
        fitted.transform(pa.table({"a": ["1.0"]}))
    with pytest.raises(SchemaError, match="column 'a' is string"):
        fitted.transform_row({"a": "1.0"})
    with pytest.raises(SchemaError, match="column 'x0' is timestamp"):
        lt.StandardScaler().fit(pa.table({"x0": pa.array([0], pa.timestamp("s"))}))


def test_wrong_width_in_whole_array_mode() -> None:
    t = lt.MinMaxScaler().fit(np.ones((3, 2)))
    with pytest.raises(SchemaError, match="MinMaxScaler was fitted on 2 columns, got 3"):
        t.transform(np.ones((3, 3)))
    with pytest.raises(SchemaError, match="fitted on 2 columns, got 1"):
        t.transform(pa.table({"a": [1.0]}))
    named = lt.StandardScaler().fit(pd.DataFrame({"age": [1.0, 3.0], "income": [10.0, 30.0]}))
    with pytest.raises(SchemaError, match=r"fitted on the columns \['age', 'income'\], got \['income', 'age'\]"):
        named.transform(pd.DataFrame({"income": [10.0], "age": [1.0]}))  # would swap the features
    assert named.transform(np.array([[1.0, 10.0]])).tolist() == [[-1.0, -1.0]]  # a bare array: by position
    with pytest.raises(ConfigError, match=r"expected a 1-D or 2-D array, got shape \(2, 2, 2\)"):
        lt.MinMaxScaler().fit(np.ones((2, 2, 2)))


@pytest.mark.parametrize("feature_range", [(1, 0), (2, 2), (0, float("inf")), (float("nan"), 1), (1, 2, 3), "ab", 5])
def test_bad_feature_range(feature_range: Any) -> None:
    with pytest.raises(ConfigError, match="feature_range must"):
        lt.MinMaxScaler(feature_range)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "either boundaries"),
        ({"boundaries": [1.0], "n_buckets": 3}, "not both or neither"),
        ({"n_buckets": 1}, "n_buckets must be an int >= 2, got 1"),
        ({"n_buckets": 2.5}, "n_buckets must be an int >= 2, got 2.5"),
        ({"n_buckets": True}, "n_buckets must be an int >= 2, got True"),
        ({"boundaries": []}, r"boundaries must be a non-empty, strictly increasing list"),
        ({"boundaries": [2.0, 1.0]}, r"strictly increasing list of finite numbers, got \[2.0, 1.0\]"),
        ({"boundaries": [1.0, 1.0]}, "strictly increasing"),
        ({"boundaries": [0.0, float("nan")]}, "finite numbers"),
        ({"boundaries": [0.0, float("inf")]}, "finite numbers"),
        ({"boundaries": ["a"]}, r"got \['a'\]"),
        ({"boundaries": 5}, "got 5"),
        ({"boundaries": "12"}, "got '12'"),
        ({"boundaries": [[1.0, 2.0]]}, "strictly increasing list"),
        ({"boundaries": {"a": [3.0, 1.0]}}, r"boundaries\['a'\] must be"),
        ({"n_buckets": 3, "strategy": "kmeans"}, "strategy must be 'quantile' or 'uniform', got 'kmeans'"),
        (
            {"n_buckets": 3, "exact_limit": -1},
            r"exact_limit must be an int >= 0 \(values kept for exact quantiles\), got -1",
        ),
    ],
)
def test_bad_bucketizer_config(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        lt.Bucketizer(**kwargs)


def test_bucketizer_boundaries_dict_missing_column() -> None:
    with pytest.raises(ConfigError, match=r"boundaries has no entry for column 'b'; it has \['a'\]"):
        lt.Bucketizer(boundaries={"a": [0.0]}, columns=["a", "b"]).fit({"a": [1.0], "b": [2.0]})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: lt.StandardScaler(columns="a"), r"columns takes a list of names, e.g. columns=\['a'\]"),
        (lambda: lt.StandardScaler(columns=[]), "columns=\\[\\] selects nothing"),
        (lambda: lt.StandardScaler(columns=["a", "a"]), "names a column twice"),
        (
            lambda: lt.OneHotEncoder("drop"),  # type: ignore[arg-type]
            "handle_unknown must be 'error' or 'ignore', got 'drop'",
        ),
        (lambda: lt.StringIndexer(min_frequency=0), "min_frequency must be an int >= 1, got 0"),
        (lambda: lt.StringIndexer(max_categories=0), "max_categories must be None or an int >= 1, got 0"),
        (lambda: lt.StringIndexer(num_oov_indices=2), "num_oov_indices must be 0 .* or 1 .*, got 2"),
        (lambda: lt.HashBucket(0), "num_buckets must be an int >= 1, got 0"),
        (lambda: lt.HashBucket(10, seed=-1), r"seed must be an int in \[0, 2\*\*64\), got -1"),
    ],
)
def test_bad_transformer_config(make: Callable[[], object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make()


def test_bad_normalizer_and_selector_arguments() -> None:
    X = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    with pytest.raises(ConfigError, match=r"strategy must be 'mean', .* got 'max'"):
        lt.FeatureNormalizer.handle_missing_values(X, "max")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="strategy='constant' needs a number as fill_value, got None"):
        lt.FeatureNormalizer.handle_missing_values(X, "constant")
    with pytest.raises(ConfigError, match="fill_value, got 'a'"):
        lt.FeatureNormalizer.handle_missing_values(X, "constant", "a")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="method must be 'iqr' or 'zscore', got 'mad'"):
        lt.FeatureNormalizer.handle_outliers(X, "mad")  # type: ignore[arg-type]
    wide = np.float32(10.0)  # numpy numbers are numbers too
    np.testing.assert_array_equal(lt.FeatureNormalizer.handle_outliers(X, "zscore", wide), X)  # type: ignore[arg-type]
    for threshold in (0, -1.0, float("nan"), "3", True):
        with pytest.raises(ConfigError, match="threshold must be a positive number"):
            lt.FeatureNormalizer.handle_outliers(X, "iqr", threshold)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="column 'x0' is string, expected a number for FeatureNormalizer"):
        lt.FeatureNormalizer.handle_outliers(np.array([["a"], ["b"]]))
    for k in (0, 3, -1, 1.5, True):
        with pytest.raises(ConfigError, match=rf"k must be an int in \[1, 2\] \(the number of features\), got {k}"):
            lt.FeatureSelector.select_by_variance(X, k)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"k must be an int in \[1, 2\]"):
            lt.FeatureSelector.select_by_correlation(X, [1, 2, 3], k)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="y has 2 values but X has 3 rows; pass one target per row"):
        lt.FeatureSelector.select_by_correlation(X, [1.0, 2.0], 1)
    with pytest.raises(SchemaError, match="y has 6 values but X has 3 rows"):
        lt.FeatureSelector.select_by_correlation(X, np.ones((3, 2)), 1)
    with pytest.raises(SchemaError, match="y must be numbers"):
        lt.FeatureSelector.select_by_correlation(X, ["a", "b", "c"], 1)


def test_bad_spec_for_one_transformer() -> None:
    with pytest.raises(ConfigError, match=r"unknown transformer kind 'nope' in spec; known kinds: \["):
        FeatureTransformer.from_spec({"kind": "nope"})
    spec = lt.StandardScaler(columns=["a"]).fit({"a": [1.0, 2.0]}).to_spec()
    with pytest.raises(ConfigError, match="malformed standard_scaler spec"):
        FeatureTransformer.from_spec({**spec, "params": {"bogus": 1}})
    with pytest.raises(ConfigError, match="malformed standard_scaler spec"):
        FeatureTransformer.from_spec({**spec, "state": {"mean": [0.0]}})
    with pytest.raises(ConfigError, match="feature_range must have low < high"):
        FeatureTransformer.from_spec({"kind": "min_max_scaler", "params": {"feature_range": [1, 0]}})


def test_save_spec_file(tmp_path: Path) -> None:
    # a transformer's spec is plain JSON data; the Pipeline writes files (see test_pipeline.py)
    t = lt.HashBucket(8, columns=["c"]).fit({"c": ["a"]})
    path = tmp_path / "hb.json"
    path.write_text(json.dumps(t.to_spec()))
    back = FeatureTransformer.from_spec(json.loads(path.read_text()))
    assert back.transform_row({"c": "a"}) == t.transform_row({"c": "a"})
