"""Online equals offline: ``transform_row(row)`` is bit-identical to the same row of ``transform(batch)``.

Hypothesis generates rows with NaN (any payload), None, infinities, huge and tiny floats, 64-bit
integers, and categories never seen in fit, for every transformer and for a mixed, multi-pass
pipeline (also after a JSON round trip).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lakefeed.transforms as lt
from lakefeed.errors import UnknownCategoryError
from lakefeed.testing import assert_rows_identical as assert_row_identical
from lakefeed.transforms.base import FeatureTransformer

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("x", pa.float64()),
        ("i", pa.int64()),
        ("c", pa.string()),
        ("k", pa.int32()),
        ("flag", pa.bool_()),
        ("p", pa.string()),
    ]
)


def _train() -> pa.Table:
    rng = np.random.default_rng(5)
    n = 400
    x = rng.normal(3.0, 10.0, n)
    x[::37] = np.nan
    return pa.table(
        {
            "id": np.arange(n),
            "x": x,
            "i": pa.array([None if j % 41 == 0 else int(v) for j, v in enumerate(rng.integers(-1000, 1000, n))]),
            "c": pa.array([None if j % 53 == 0 else str(v) for j, v in enumerate(rng.choice(list("abcde"), n))]),
            "k": pa.array(rng.integers(0, 6, n), pa.int32()),
            "flag": rng.random(n) < 0.3,
            "p": ["pass"] * n,
        },
        schema=SCHEMA,
    )


TRAIN = _train()

# -- generated rows --------------------------------------------------------------------------------

SPECIAL_FLOATS = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e300,
    1e-300,
    math.inf,
    -math.inf,
    math.nan,
    3.0,  # the training mean region
    -1.0,
    1e300 * 0.999,
]

floats = st.one_of(
    st.none(),
    st.sampled_from(SPECIAL_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),  # any NaN payload and sign too
    st.floats(-50.0, 50.0),
)
ints = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),  # beyond 2**53: rounded to float64 the same way in both paths
    st.integers(-1100, 1100),
    st.sampled_from([2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)]),
)
strings = st.one_of(st.none(), st.sampled_from(list("abcde")), st.text(alphabet="abcz\u00e9", max_size=3))
ks = st.one_of(st.none(), st.integers(-3, 9), st.integers(-(2**31), 2**31 - 1))


def _in_schema_order(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in SCHEMA.names}


rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.integers(0, 10**6),
            "x": floats,
            "i": ints,
            "c": strings,
            "k": ks,
            "flag": st.one_of(st.none(), st.booleans()),
            "p": st.one_of(st.none(), st.text(max_size=3)),
        }
    ).map(_in_schema_order),
    min_size=1,
    max_size=25,
)

# -- comparison ------------------------------------------------------------------------------------


def check_parity(t: FeatureTransformer | lt.Pipeline, rows: list[dict[str, Any]]) -> None:
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    offline = t.transform(batch)
    assert isinstance(offline, pa.RecordBatch)
    expected = offline.to_pylist()
    for row, want in zip(rows, expected, strict=True):
        assert_row_identical(t.transform_row(row), want)
    # rows as Arrow gives them back (e.g. int32 'k' as int) are the same rows
    for row, want in zip(batch.to_pylist(), expected, strict=True):
        assert_row_identical(t.transform_row(row), want)
    # a table of several chunks gives the same rows as the batch
    if len(rows) > 1:
        table = pa.Table.from_batches([batch.slice(0, 1), batch.slice(1)])
        table_out = t.transform(table).to_pylist()
        for got, want in zip(table_out, expected, strict=True):
            assert_row_identical(got, want)


def fitted(t: FeatureTransformer) -> FeatureTransformer:
    return t.fit(TRAIN)


TRANSFORMERS: dict[str, FeatureTransformer] = {
    "standard": fitted(lt.StandardScaler(columns=["x", "i"])),
    "standard_no_mean": fitted(lt.StandardScaler(with_mean=False, columns=["x"])),
    "standard_no_std": fitted(lt.StandardScaler(with_std=False, columns=["i", "x"])),
    "minmax": fitted(lt.MinMaxScaler((-1, 1), columns=["x", "i", "k"])),
    "minmax_clip": fitted(lt.MinMaxScaler(clip=True, columns=["x"])),
    "bucket_quantile": fitted(lt.Bucketizer(n_buckets=5, columns=["x", "i"])),
    "bucket_uniform": fitted(lt.Bucketizer(n_buckets=4, strategy="uniform", columns=["x"])),
    "bucket_explicit": fitted(lt.Bucketizer(boundaries=[-1.0, 0.0, 1e300], columns=["x", "flag"])),
    "onehot": fitted(lt.OneHotEncoder("ignore", columns=["c", "k", "flag"])),
    "indexer": fitted(lt.StringIndexer(min_frequency=3, columns=["c", "k"])),
    "indexer_capped": fitted(lt.StringIndexer(max_categories=2, columns=["k", "c"])),
    "hash": fitted(lt.HashBucket(97, seed=5, columns=["c", "k", "i", "flag"])),
}


def mixed_pipeline() -> lt.Pipeline:
    return lt.Pipeline(
        [
            lt.StandardScaler(columns=["x"]),
            lt.Bucketizer(n_buckets=4, columns=["x"]),  # fitted on the scaled values
            lt.OneHotEncoder("ignore", columns=["x"]),  # fitted on the buckets
            lt.MinMaxScaler((-2, 2), columns=["i"]),
            lt.OneHotEncoder("ignore", columns=["c"]),
            lt.StringIndexer(min_frequency=2, columns=["k"]),
            lt.HashBucket(13, columns=["flag"]),
            lt.StandardScaler(columns=["c_a", "k"]),  # reads an earlier step's outputs
        ]
    ).fit(TRAIN)


PIPELINE = mixed_pipeline()
RESTORED = lt.Pipeline.from_json(PIPELINE.to_json())

# -- properties ------------------------------------------------------------------------------------

PARITY = settings(max_examples=100, deadline=None)


@pytest.mark.parametrize("name", list(TRANSFORMERS))
@PARITY
@given(rows=rows_strategy)
def test_transformer_row_equals_batch(name: str, rows: list[dict[str, Any]]) -> None:
    check_parity(TRANSFORMERS[name], rows)


@settings(max_examples=200, deadline=None)
@given(rows=rows_strategy)
def test_pipeline_row_equals_batch(rows: list[dict[str, Any]]) -> None:
    check_parity(PIPELINE, rows)


@PARITY
@given(rows=rows_strategy)
def test_restored_pipeline_is_bit_identical(rows: list[dict[str, Any]]) -> None:
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    for got, want in zip(RESTORED.transform(batch).to_pylist(), PIPELINE.transform(batch).to_pylist(), strict=True):
        assert_row_identical(got, want)
    for row in rows:
        assert_row_identical(RESTORED.transform_row(row), PIPELINE.transform_row(row))


STRICT: dict[str, FeatureTransformer] = {
    "onehot": fitted(lt.OneHotEncoder("error", columns=["c", "k"])),
    "indexer": fitted(lt.StringIndexer(num_oov_indices=0, columns=["c", "k"])),
}


@pytest.mark.parametrize("name", list(STRICT))
@PARITY
@given(rows=rows_strategy)
def test_unknown_categories_raise_alike(name: str, rows: list[dict[str, Any]]) -> None:
    t = STRICT[name]
    online: list[dict[str, Any] | None] = []
    for row in rows:
        try:
            online.append(t.transform_row(row))
        except UnknownCategoryError:
            online.append(None)
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    if any(r is None for r in online):
        with pytest.raises(UnknownCategoryError):
            t.transform(batch)
        return
    for got, want in zip(online, t.transform(batch).to_pylist(), strict=True):
        assert got is not None
        assert_row_identical(got, want)


@PARITY
@given(rows=rows_strategy, data=st.data())
def test_row_key_order_is_the_rows_own(rows: list[dict[str, Any]], data: st.DataObject) -> None:
    row = rows[0]
    keys = data.draw(st.permutations(list(row)))
    shuffled = {k: row[k] for k in keys}
    got, want = PIPELINE.transform_row(shuffled), PIPELINE.transform_row(row)
    assert sorted(got) == sorted(want)
    assert_row_identical({k: got[k] for k in want}, want)


def _as_numpy_scalar(value: Any, arrow_type: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_floating(arrow_type):
        return np.float64(value)
    if pa.types.is_boolean(arrow_type):
        return np.bool_(value)
    if pa.types.is_integer(arrow_type):
        return np.int64(value)
    return np.str_(value)


@PARITY
@given(rows=rows_strategy)
def test_numpy_scalars_in_rows(rows: list[dict[str, Any]]) -> None:
    # the transformed columns come out as Python values whatever scalars came in (others pass through)
    def np_row(row: dict[str, Any], columns: list[str]) -> dict[str, Any]:
        return {k: _as_numpy_scalar(v, SCHEMA.field(k).type) if k in columns else v for k, v in row.items()}

    for row in rows:
        got = PIPELINE.transform_row(np_row(row, PIPELINE.input_columns))
        assert_row_identical(got, PIPELINE.transform_row(row))
        for t in TRANSFORMERS.values():
            assert_row_identical(t.transform_row(np_row(row, list(t.columns or ()))), t.transform_row(row))


WHOLE = lt.StandardScaler().fit(TRAIN.select(["x", "i"]).rename_columns(["x0", "x1"]))


@PARITY
@given(rows=rows_strategy)
def test_whole_array_mode_row_equals_matrix_row(rows: list[dict[str, Any]]) -> None:
    small = [{"x0": r["x"], "x1": r["i"]} for r in rows]
    batch = pa.RecordBatch.from_pylist(small, schema=pa.schema([("x0", pa.float64()), ("x1", pa.int64())]))
    matrix = WHOLE.transform(batch)
    assert matrix.shape == (len(rows), 2)
    for row, want in zip(small, matrix.tolist(), strict=True):
        assert_row_identical(WHOLE.transform_row(row), dict(zip(["x0", "x1"], want, strict=True)))


# -- float32 columns: float32 out, computed in float64 and rounded once, in both paths -------------

F32 = pa.schema([("id", pa.int64()), ("h", pa.float32())])
F32_TRAIN = pa.table(
    {"id": np.arange(300), "h": np.random.default_rng(9).normal(2.0, 7.0, 300).astype(np.float32)}, schema=F32
)
F32_STEPS: dict[str, FeatureTransformer | lt.Pipeline] = {
    "standard": lt.StandardScaler(columns=["h"]).fit(F32_TRAIN),
    "minmax": lt.MinMaxScaler((-1, 1), clip=True, columns=["h"]).fit(F32_TRAIN),
    "pipeline": lt.Pipeline([lt.StandardScaler(columns=["h"]), lt.Bucketizer(n_buckets=3, columns=["h"])]).fit(
        F32_TRAIN
    ),
}
f32_rows = st.lists(
    st.fixed_dictionaries({"id": st.integers(0, 10), "h": st.one_of(st.none(), st.floats(width=32))}).map(
        lambda r: {"id": r["id"], "h": r["h"]}
    ),
    min_size=1,
    max_size=20,
)


@pytest.mark.parametrize("name", list(F32_STEPS))
@PARITY
@given(rows=f32_rows)
def test_float32_columns_row_equals_batch(name: str, rows: list[dict[str, Any]]) -> None:
    t = F32_STEPS[name]
    batch = pa.RecordBatch.from_pylist(rows, schema=F32)
    out = t.transform(batch)
    assert out.schema.field("h").type == (pa.int64() if name == "pipeline" else pa.float32())
    for row, want in zip(rows, out.to_pylist(), strict=True):
        assert_row_identical(t.transform_row(row), want)
    restored = lt.Pipeline.from_json(lt.Pipeline([t]).to_json()) if isinstance(t, FeatureTransformer) else t
    for row, want in zip(rows, out.to_pylist(), strict=True):
        assert_row_identical(restored.transform_row(row), want)
