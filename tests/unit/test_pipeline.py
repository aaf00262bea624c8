"""lakefeed.transforms.Pipeline: fitting (one pass and several), applying, rows, specs, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import lakefeed as lf
import lakefeed.transforms as lt
from lakefeed.errors import ColumnNotFoundError, ConfigError, NotFittedError, SchemaError, UnknownCategoryError
from lakefeed.testing import assert_rows_identical
from lakefeed.transforms import data as tdata
from lakefeed.transforms import pipeline as tpipeline

N_FILE = 3_000
FILES = 4


def _file(i: int) -> pa.Table:
    rng = np.random.default_rng(7 + i)
    a = rng.normal(5 * i, 2.0, N_FILE)
    a[rng.random(N_FILE) < 0.02] = np.nan
    return pa.table(
        {
            "id": pa.array(np.arange(i * N_FILE, (i + 1) * N_FILE), pa.int64()),
            "a": a,
            "b": pa.array(rng.integers(0, 100, N_FILE), pa.int32()),
            "country": pa.array(rng.choice(["fr", "de", "us", "jp"], N_FILE).tolist(), pa.string()),
            "user": pa.array([f"u{v}" for v in rng.integers(0, 50, N_FILE)], pa.string()),
            "note": pa.array(["free text"] * N_FILE, pa.string()),
        }
    )


@pytest.fixture(scope="module")
def memory() -> pa.Table:
    return pa.concat_tables([_file(i) for i in range(FILES)])


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    wh = lf.Warehouse(tmp_path_factory.mktemp("pipeline"))
    t = wh.create_table("ns.p", _file(0))
    for i in range(1, FILES):
        t.append(_file(i))
    return t


def make() -> lt.Pipeline:
    return lt.Pipeline(
        [
            lt.StandardScaler(columns=["a", "b"]),
            lt.OneHotEncoder(handle_unknown="ignore", columns=["country"]),
            lt.StringIndexer(min_frequency=60, columns=["user"]),
            lt.HashBucket(16, columns=["note"]),
        ]
    )


def by_hand(data: pa.Table, fit_on: pa.Table) -> pa.Table:
    """The same pipeline, one transformer at a time."""
    out = data
    for step in make().steps:
        out = step.fit(fit_on).transform(out)
        fit_on = step.transform(fit_on)
    return out


def assert_rows_list_identical(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_rows_identical(g, w)


def ipc_bytes(batch: pa.RecordBatch | pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write(batch)
    return bytes(sink.getvalue())


def test_doc_example_and_column_layout() -> None:
    t = pa.table({"age": [20.0, 40.0], "country": ["fr", "de"], "y": [0, 1]})
    pipe = lt.Pipeline([lt.StandardScaler(columns=["age"]), lt.OneHotEncoder(columns=["country"])]).fit(t)
    assert pipe.transform(t).to_pydict() == {
        "age": [-1.0, 1.0],
        "country_de": [0.0, 1.0],
        "country_fr": [1.0, 0.0],
        "y": [0, 1],
    }
    assert pipe.transform_row({"age": 40.0, "country": "fr", "y": 1}) == {
        "age": 1.0,
        "country_de": 0.0,
        "country_fr": 1.0,
        "y": 1,
    }
    assert pipe.input_columns == ["age", "country"]
    assert pipe.output_columns == ["age", "country_de", "country_fr"]
    schema = pipe.output_schema(t.schema)
    assert schema.names == ["age", "country_de", "country_fr", "y"]
    assert schema.field("age").type == pa.float64()
    assert schema.field("y").type == pa.int64()


@pytest.mark.parametrize("source", ["table", "scan", "arrow", "batch", "pandas"])
def test_fit_on_every_source_equals_by_hand(
    source: str, table: lf.Table, memory: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tdata, "FIT_TASK_BYTES", 1 << 15)  # several tasks: statistics are merged
    inputs: dict[str, Any] = {
        "table": table,
        "scan": table.scan(columns=["a", "b", "country", "user", "note"]),
        "arrow": memory,
        "batch": memory.combine_chunks().to_batches()[0],
        "pandas": memory.to_pandas(),
    }
    pipe = make().fit(inputs[source], num_threads=3)
    assert pipe.is_fitted
    expected = by_hand(memory, memory)
    got = pipe.transform(memory)
    assert got.schema == expected.schema
    assert got.column_names == ["id", "a", "b", *[f"country_{c}" for c in ("de", "fr", "jp", "us")], "user", "note"]
    for name in got.column_names:
        left, right = got.column(name).to_numpy(), expected.column(name).to_numpy()
        if left.dtype == np.float64:  # statistics merged in another order: equal to float rounding
            np.testing.assert_allclose(left, right, rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_array_equal(left, right)
    scaler = pipe.steps[0]
    assert isinstance(scaler, lt.StandardScaler)
    valid_a = int((~np.isnan(memory.column("a").to_numpy())).sum())
    assert scaler.n_samples_seen_.tolist() == [valid_a, FILES * N_FILE]


def test_fit_reads_only_the_needed_columns(table: lf.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str] | None] = []
    original = tpipeline.fit_chunks

    def spy(data: object, columns: Any, accumulate: Any, **kw: Any) -> list[Any]:
        seen.append(list(columns) if columns is not None else None)
        return original(data, columns, accumulate, **kw)

    monkeypatch.setattr(tpipeline, "fit_chunks", spy)
    # "note" and "id" are in the table, and "note" is a string: no numeric step may see it
    lt.Pipeline([lt.StandardScaler(columns=["a"]), lt.MinMaxScaler(columns=["b"])]).fit(table)
    assert seen == [["a", "b"]]


def test_transform_kinds(memory: pa.Table) -> None:
    pipe = make().fit(memory)
    batch = memory.slice(0, 50).combine_chunks().to_batches()[0]
    out = pipe.transform(batch)
    assert isinstance(out, pa.RecordBatch)
    assert isinstance(pipe.transform_batch(batch), pa.RecordBatch)
    table_out = pipe.transform(memory.slice(0, 50))
    assert isinstance(table_out, pa.Table)
    assert_rows_list_identical(table_out.to_pylist(), out.to_pylist())
    chunked = pa.concat_tables([memory.slice(0, 20), memory.slice(20, 30)])  # several chunks
    assert_rows_list_identical(pipe.transform(chunked).to_pylist(), out.to_pylist())
    frame = memory.slice(0, 50).to_pandas()
    frame.index = pd.Index(range(100, 150))
    pd_out = pipe.transform(frame)
    assert isinstance(pd_out, pd.DataFrame)
    assert list(pd_out.index) == list(range(100, 150))
    assert list(pd_out.columns) == out.schema.names
    assert pd_out["user"].tolist() == out.column("user").to_pylist()
    np.testing.assert_array_equal(pd_out["a"].to_numpy(), out.column("a").to_numpy())
    as_dict = pipe.transform({k: memory.column(k).to_numpy()[:50] for k in memory.column_names})
    assert isinstance(as_dict, dict)
    assert list(as_dict) == out.schema.names
    np.testing.assert_array_equal(as_dict["country_fr"], out.column("country_fr").to_numpy())


def test_pandas_passthrough_keeps_dtypes() -> None:
    df = pd.DataFrame(
        {
            "a": [1.0, 2.0, 3.0],
            "tag": pd.Categorical(["x", "y", "x"]),
            "n": pd.array([1, None, 3], dtype="Int64"),
            "s": pd.Series(["p", None, "q"], dtype=object),
        }
    )
    out = lt.Pipeline([lt.StandardScaler(columns=["a"])]).fit_transform(df)
    assert isinstance(out["tag"].dtype, pd.CategoricalDtype)
    assert str(out["n"].dtype) == "Int64"
    assert out["s"].tolist() == ["p", None, "q"]


def test_transform_row_equals_batch(memory: pa.Table) -> None:
    pipe = make().fit(memory)
    batch = memory.slice(0, 200)
    rows = batch.to_pylist()
    expected = pipe.transform(batch).to_pylist()
    for row, want in zip(rows, expected, strict=True):
        assert_rows_identical(pipe.transform_row(row), want)
    unseen = {**rows[0], "country": "zz", "user": "nobody", "a": None}
    got = pipe.transform_row(unseen)
    assert [got[f"country_{c}"] for c in ("de", "fr", "jp", "us")] == [0.0, 0.0, 0.0, 0.0]
    assert got["user"] == 0
    assert np.isnan(got["a"])
    partial = pipe.transform_row({k: v for k, v in rows[0].items() if k not in ("id",)})
    assert "id" not in partial


def test_multi_pass_fits_later_steps_on_transformed_values(table: lf.Table, memory: pa.Table) -> None:
    pipe = lt.Pipeline(
        [
            lt.StandardScaler(columns=["a"]),
            lt.Bucketizer(n_buckets=4, columns=["a"]),  # on the scaled values: pass 2
            lt.OneHotEncoder(columns=["a"]),  # on the buckets: pass 3
            lt.MinMaxScaler(columns=["b"]),  # independent: pass 1
        ]
    )
    assert pipe._passes(memory.column_names) == [0, 1, 2, 0]
    pipe.fit(memory)
    scaler = lt.StandardScaler(columns=["a"]).fit(memory)
    scaled = scaler.transform(memory)
    buckets = lt.Bucketizer(n_buckets=4, columns=["a"]).fit(scaled)
    bucketizer = pipe.steps[1]
    assert isinstance(bucketizer, lt.Bucketizer)
    np.testing.assert_array_equal(bucketizer.splits_[0], buckets.splits_[0])
    a = memory.column("a").to_numpy()
    z = (a - np.nanmean(a)) / np.nanstd(a)
    np.testing.assert_allclose(
        bucketizer.splits_[0],
        np.percentile(z[~np.isnan(z)], [25, 50, 75], method="averaged_inverted_cdf"),
        rtol=1e-12,
    )
    onehot = pipe.steps[2]
    assert isinstance(onehot, lt.OneHotEncoder)
    assert onehot.categories_ == [[0, 1, 2, 3, 4]]  # 4 buckets and NaN's bucket
    expected = lt.OneHotEncoder(columns=["a"]).fit(buckets.transform(scaled))
    assert onehot.dtypes_ == expected.dtypes_
    # the same from a multi-file table, streamed once per pass
    from_table = lt.Pipeline(
        [
            lt.StandardScaler(columns=["a"]),
            lt.Bucketizer(n_buckets=4, columns=["a"]),
            lt.OneHotEncoder(columns=["a"]),
            lt.MinMaxScaler(columns=["b"]),
        ]
    ).fit(table)
    other = from_table.steps[1]
    assert isinstance(other, lt.Bucketizer)
    np.testing.assert_allclose(other.splits_[0], bucketizer.splits_[0], rtol=1e-9)
    out = pipe.transform(memory.slice(0, 10))
    assert out.column_names[:6] == ["id", "a_0", "a_1", "a_2", "a_3", "a_4"]
    assert_rows_identical(pipe.transform_row(memory.slice(3, 1).to_pylist()[0]), out.to_pylist()[3])


def test_step_on_an_earlier_output(memory: pa.Table) -> None:
    pipe = lt.Pipeline(
        [lt.OneHotEncoder(columns=["country"]), lt.StandardScaler(columns=["country_fr", "country_de"])]
    ).fit(memory)
    fr = (np.asarray(memory.column("country").to_pylist()) == "fr").astype(float)
    scaler = pipe.steps[1]
    assert isinstance(scaler, lt.StandardScaler)
    assert scaler.mean_[0] == pytest.approx(fr.mean(), rel=1e-12)
    assert pipe.input_columns == ["country"]


def test_spec_round_trips(memory: pa.Table, tmp_path: Path) -> None:
    pipe = make()
    pipe.steps.append(lt.Bucketizer(n_buckets=5, columns=["a"]))
    pipe.fit(memory)
    spec = pipe.to_spec()
    assert spec["format"] == "lakefeed.transforms.pipeline"
    assert spec["version"] == lt.SPEC_VERSION == 1
    assert [s["kind"] for s in spec["steps"]] == [
        "standard_scaler",
        "one_hot_encoder",
        "string_indexer",
        "hash_bucket",
        "bucketizer",
    ]
    text = pipe.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    path = tmp_path / "pipe.json"
    pipe.save(path)
    assert not (tmp_path / "pipe.json.tmp").exists()
    restored = [lt.Pipeline.from_spec(json.loads(text)), lt.Pipeline.from_json(text), lt.Pipeline.load(path)]
    sample = memory.slice(0, 300)
    sample = sample.set_column(1, "a", pa.array([None, np.nan, np.inf, -np.inf, *sample.column("a").to_pylist()[4:]]))
    expected = pipe.transform(sample)
    rows = sample.to_pylist()
    for other in restored:
        assert other.is_fitted
        assert repr(other) == repr(pipe)
        assert ipc_bytes(other.transform(sample)) == ipc_bytes(expected)
        for row in rows[:5]:
            assert_rows_identical(other.transform_row(row), pipe.transform_row(row))
    # an unfitted pipeline round-trips unfitted
    assert not lt.Pipeline.from_json(make().to_json()).is_fitted


def test_spec_with_non_finite_state(tmp_path: Path) -> None:
    t = pa.table({"a": [np.nan, np.nan], "b": [1.0, 2.0]})
    pipe = lt.Pipeline([lt.StandardScaler(columns=["a", "b"]), lt.MinMaxScaler(columns=["a"])]).fit(t)
    pipe.save(tmp_path / "p.json")
    back = lt.Pipeline.load(tmp_path / "p.json")
    assert ipc_bytes(back.transform(t)) == ipc_bytes(pipe.transform(t))


# -- errors ----------------------------------------------------------------------------------------


def test_pipeline_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"step 1 \(StandardScaler\) has no columns=\[...\]"):
        lt.Pipeline([lt.MinMaxScaler(columns=["a"]), lt.StandardScaler()])
    with pytest.raises(ConfigError, match="a Pipeline needs at least one step"):
        lt.Pipeline([])
    with pytest.raises(ConfigError, match="step 0 is str, not a lakefeed transformer"):
        lt.Pipeline(["scale"])  # type: ignore[list-item]


def test_pipeline_not_fitted_errors() -> None:
    pipe = lt.Pipeline([lt.StandardScaler(columns=["a"]), lt.OneHotEncoder(columns=["c"])])
    with pytest.raises(NotFittedError, match=r"pipeline steps \['0 \(StandardScaler\)', '1 \(OneHotEncoder\)'\]"):
        pipe.transform(pa.table({"a": [1.0], "c": ["x"]}))
    with pytest.raises(NotFittedError, match=r"are not fitted; call \.fit"):
        pipe.transform_row({"a": 1.0, "c": "x"})
    with pytest.raises(NotFittedError, match="not fitted"):
        _ = pipe.output_columns


def test_pipeline_column_errors(table: lf.Table, memory: pa.Table) -> None:
    with pytest.raises(ColumnNotFoundError, match=r"step 1 \(MinMaxScaler\) needs \['zz'\]: not in the input"):
        lt.Pipeline([lt.StandardScaler(columns=["a"]), lt.MinMaxScaler(columns=["zz"])]).fit(memory)
    with pytest.raises(ColumnNotFoundError, match=r"needs \['zz'\]"):
        lt.Pipeline([lt.StandardScaler(columns=["zz"])]).fit(table)
    with pytest.raises(ColumnNotFoundError, match=r"step 1 \(StandardScaler\) needs \['country'\]"):
        # the encoder replaced "country": a later step cannot read it
        lt.Pipeline([lt.OneHotEncoder(columns=["country"]), lt.StandardScaler(columns=["country"])]).fit(memory)
    pipe = lt.Pipeline([lt.StandardScaler(columns=["a"])]).fit(memory)
    with pytest.raises(ColumnNotFoundError, match=r"StandardScaler needs column\(s\) \['a'\]"):
        pipe.transform(pa.table({"b": [1.0]}))
    with pytest.raises(ColumnNotFoundError, match=r"row has no \['a'\] for StandardScaler"):
        pipe.transform_row({"b": 1.0})
    with pytest.raises(ConfigError, match="transform\\(\\) takes in-memory data"):
        pipe.transform(table)
    with pytest.raises(SchemaError, match="column 'note' is string, expected a number for StandardScaler"):
        lt.Pipeline([lt.StandardScaler(columns=["note"])]).fit(table)


def test_pipeline_unknown_category_and_clash(memory: pa.Table) -> None:
    pipe = lt.Pipeline([lt.OneHotEncoder(columns=["country"])]).fit(memory)
    with pytest.raises(UnknownCategoryError, match=r"column 'country' has categories \['xx'\] not seen in fit"):
        pipe.transform(pa.table({"country": ["fr", "xx"]}))
    with pytest.raises(UnknownCategoryError, match="'xx'"):
        pipe.transform_row({"country": "xx"})
    with pytest.raises(SchemaError, match=r"OneHotEncoder outputs \['country_fr'\], which the input already has"):
        pipe.transform(pa.table({"country": ["fr"], "country_fr": [9]}))


def _spec() -> dict[str, Any]:
    return lt.Pipeline([lt.StandardScaler(columns=["a"])]).fit(pa.table({"a": [1.0, 2.0]})).to_spec()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda s: [s], "not a lakefeed pipeline spec"),
        (lambda s: {**s, "format": "sklearn"}, r"not a lakefeed pipeline spec \(expected format"),
        (lambda s: {**s, "version": 2}, r"pipeline spec version 2 is newer than this lakefeed reads \(1\); upgrade"),
        (lambda s: {**s, "version": "1"}, "pipeline spec version must be a positive int, got '1'"),
        (lambda s: {**s, "version": 0}, "must be a positive int, got 0"),
        (lambda s: {k: v for k, v in s.items() if k != "version"}, "must be a positive int, got None"),
        (lambda s: {**s, "steps": 5}, "'steps' must be a list of step specs, got int"),
        (lambda s: {**s, "steps": [5]}, "'steps' must be a list of step specs"),
        (lambda s: {**s, "steps": []}, "a Pipeline needs at least one step"),
        (lambda s: {**s, "steps": [{**s["steps"][0], "kind": "pca"}]}, "unknown transformer kind 'pca'"),
        (lambda s: {**s, "steps": [{**s["steps"][0], "params": {"x": 1}}]}, "malformed standard_scaler spec"),
        (lambda s: {**s, "steps": [{**s["steps"][0], "state": {}}]}, "malformed standard_scaler spec"),
        (lambda s: {**s, "steps": [{**s["steps"][0], "columns": None}]}, "has no columns"),
    ],
)
def test_malformed_specs(mutate: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        lt.Pipeline.from_spec(mutate(_spec()))


def test_malformed_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pipeline spec is not valid JSON"):
        lt.Pipeline.from_json("{not json")
    (tmp_path / "bad.json").write_text('{"format": "lakefeed.transforms.pipeline", "version": 99, "steps": []}')
    with pytest.raises(ConfigError, match="version 99 is newer"):
        lt.Pipeline.load(tmp_path / "bad.json")
