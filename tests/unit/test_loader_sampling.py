"""The loader's sampling strategies and transform pipelines: statistics, resume, sharding, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

import lakefeed as lf
import lakefeed.transforms as lt
from lakefeed.errors import (
    ColumnNotFoundError,
    ConfigError,
    NotFittedError,
    ResumeStateError,
    SchemaError,
    UnsupportedOperationError,
)
from lakefeed.samplers import Balanced, Stratified, Weighted
from tests.conftest import table_of_files

# uneven files; the weight depends on the file, so blocks mixing different files weigh differently
SIZES = [4_000, 1_500, 6_000, 2_500]
N = sum(SIZES)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    rng = np.random.default_rng(3)
    parts = []
    start = 0
    for k, size in enumerate(SIZES):
        ids = np.arange(start, start + size)
        y = (rng.random(size) < 0.1).astype(np.int64)  # 10% positives
        parts.append(
            pa.table(
                {
                    "id": ids,
                    "x": rng.normal(size=size),
                    "y": y,
                    "file": np.full(size, k),
                    "w": np.where(ids % 50 == 0, 0.0, float(k + 1)),  # every 50th row never drawn
                    "klass": pa.array(np.array(["a", "b", "c"])[ids % 3]),
                    "country": pa.array(rng.choice(["fr", "de", "us"], size)),
                }
            )
        )
        start += size
    return table_of_files(lf.Warehouse(tmp_path_factory.mktemp("sampling")), "s.t", parts)


def _loader(table: lf.Table, **kwargs: object) -> lf.Loader:
    options: dict[str, object] = {"batch_size": 100, "features": ["x"], "label": "y", "columns": ["id", "file"]}
    options.update(kwargs)
    return lf.Loader(table, target_bytes=40_000, shuffle_buffer=1_000, **options)  # type: ignore[arg-type]


def _drawn(loader: lf.Loader, epochs: int, key: str = "id") -> np.ndarray:
    out = []
    for e in range(epochs):
        loader.set_epoch(e)
        out.extend(b[key] for b in loader)
    return np.concatenate(out)


@pytest.mark.parametrize("cache", [None, "memory"])
def test_weighted_frequencies_follow_the_weights(table: lf.Table, cache: str | None) -> None:
    loader = _loader(table, sampling=Weighted("w"), cache=cache)
    assert len(loader) == N // 100
    ids = _drawn(loader, 8)  # 112k draws
    assert len(ids) == 8 * N
    assert not np.isin(ids, np.arange(0, N, 50)).any()  # weight 0: never drawn
    # per file, expected share = sum of the file's weights / total weight (chi-square, 4 cells)
    weights = np.concatenate([np.where(np.arange(s) % 50 == 0, 0.0, float(k + 1)) for k, s in enumerate(SIZES)])
    bounds = np.cumsum([0, *SIZES])
    expected = np.array([weights[bounds[k] : bounds[k + 1]].sum() for k in range(len(SIZES))]) / weights.sum()
    observed = np.array([((ids >= bounds[k]) & (ids < bounds[k + 1])).sum() for k in range(len(SIZES))])
    assert stats.chisquare(observed, expected * len(ids)).pvalue > 0.001
    # and per row within one file: uniform
    first = np.bincount(ids[ids < SIZES[0]], minlength=SIZES[0])[np.arange(SIZES[0]) % 50 != 0]
    assert stats.chisquare(first).pvalue > 0.001


def test_stratified_shares_hold_within_one_percent(table: lf.Table) -> None:
    loader = _loader(table, sampling=Stratified("y", shares={0: 1, 1: 1}))
    labels = _drawn(loader, 8, key="label")
    assert abs(labels.mean() - 0.5) < 0.01
    natural = _drawn(_loader(table, sampling=Stratified("y")), 8, key="label")
    positives = pa.concat_arrays([c for c in table.scan(columns=["y"]).to_arrow().column("y").chunks]).to_numpy().mean()
    assert abs(natural.mean() - positives) < 0.01


def test_stratified_string_classes(table: lf.Table) -> None:
    loader = _loader(table, columns=["id"], sampling=Stratified("klass", shares={"a": 2, "b": 1, "c": 1}))
    ids = _drawn(loader, 6)
    shares = np.bincount(ids % 3, minlength=3) / len(ids)
    np.testing.assert_allclose(shares, [0.5, 0.25, 0.25], atol=0.01)


@pytest.mark.parametrize("cache", [None, "memory"])
def test_balanced_batches_are_exactly_balanced(table: lf.Table, cache: str | None) -> None:
    loader = _loader(table, batch_size=60, columns=["id"], sampling=Balanced("klass"), cache=cache)
    batches = [b["id"] % 3 for b in loader]
    assert len(batches) == len(loader) == -(-N // 60)
    for classes in batches:
        assert np.bincount(classes, minlength=3).tolist() == [20, 20, 20]


@pytest.mark.parametrize(
    "sampling",
    [Weighted("w"), Stratified("y", shares={0: 1, 1: 3}), Balanced("y")],
    ids=["weighted", "stratified", "balanced"],
)
def test_sampled_epochs_resume_exactly(table: lf.Table, sampling: object) -> None:
    full = [b["id"].copy() for b in _loader(table, sampling=sampling, seed=5)]
    for k in (0, 1, 17, len(full) - 1):
        loader = _loader(table, sampling=sampling, seed=5)
        it = iter(loader)
        for _ in range(k):
            next(it)
        state = loader.state_dict()
        resumed = _loader(table, sampling=sampling, seed=5)
        resumed.load_state_dict(state)
        rest = [b["id"] for b in resumed]
        assert len(rest) == len(full) - k
        assert all(np.array_equal(a, b) for a, b in zip(rest, full[k:], strict=True))


def test_sampling_order_is_a_function_of_seed_and_epoch(table: lf.Table) -> None:
    a = _drawn(_loader(table, sampling=Weighted("w"), seed=1), 1)
    b = _drawn(_loader(table, sampling=Weighted("w"), seed=1), 1)
    assert np.array_equal(a, b)
    loader = _loader(table, sampling=Weighted("w"), seed=1)
    loader.set_epoch(1)
    assert not np.array_equal(a, np.concatenate([x["id"] for x in loader]))


@pytest.mark.parametrize("world", [2, 3, 8])
def test_sampled_ranks_get_equal_batches(table: lf.Table, world: int) -> None:
    counts = set()
    for rank in range(world):
        loader = _loader(table, sampling=Balanced("y"), rank=rank, world_size=world)
        batches = list(loader)
        assert len(batches) == len(loader)
        assert all(len(b["id"]) == 100 and b["label"].sum() == 50 for b in batches)
        counts.add(len(batches))
    assert len(counts) == 1


def test_a_state_with_other_sampling_is_refused(table: lf.Table) -> None:
    loader = _loader(table, sampling=Weighted("w"))
    state = loader.state_dict()
    with pytest.raises(ResumeStateError, match="sampling"):
        _loader(table, sampling=Balanced("y")).load_state_dict(state)


@pytest.mark.parametrize(
    ("column", "values", "error", "match"),
    [
        ("w", [1.0, -1.0, 2.0], ConfigError, "negative"),
        ("w", [1.0, float("nan"), 2.0], ConfigError, "NaN"),
        ("w", [0.0, 0.0, 0.0], ConfigError, "every weight is 0"),
        ("w", [1.0, None, 2.0], SchemaError, "null"),
    ],
)
def test_bad_weights(tmp_path: Path, column: str, values: list[object], error: type, match: str) -> None:
    t = lf.Warehouse(tmp_path).create_table(
        "s.bad", pa.table({"x": [1.0, 2.0, 3.0], column: pa.array(values, pa.float64())})
    )
    with pytest.raises(error, match=match):
        lf.Loader(t, batch_size=1, features=["x"], sampling=Weighted(column))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sampling": Weighted("nope")}, ColumnNotFoundError, "nope"),
        ({"sampling": Weighted("klass")}, SchemaError, "weights must be numbers"),
        ({"sampling": Stratified("x")}, SchemaError, "class labels"),
        ({"sampling": Weighted("w"), "shuffle": False}, ConfigError, "shuffle=True"),
        ({"sampling": Weighted("w", replacement=False)}, UnsupportedOperationError, "replacement"),
        ({"sampling": Stratified("y", shares={7: 1})}, ConfigError, "class 7 in shares has no rows"),
        ({"sampling": Balanced("klass"), "batch_size": 100}, ConfigError, "not a multiple of the 3 classes"),
        ({"sampling": "w"}, ConfigError, "Weighted, Stratified or Balanced"),
    ],
)
def test_bad_sampling(table: lf.Table, kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _loader(table, **kwargs)


def test_balanced_needs_a_block_with_every_class(tmp_path: Path) -> None:
    # the rare class sits in one file only; with one-lane tiny blocks no block holds both classes
    t = lf.Warehouse(tmp_path).create_table("s.rare", pa.table({"x": np.zeros(500), "y": np.zeros(500, np.int64)}))
    t.append(pa.table({"x": np.ones(6), "y": np.ones(6, np.int64)}))  # both sizes even: blocks of 2 never mix
    loader = lf.Loader(
        t, batch_size=2, features=["x"], label="y", sampling=Balanced("y"), shuffle_buffer=2, memory_budget=1
    )
    with pytest.raises(ConfigError, match="shuffle_buffer"):
        list(loader)
    cached = lf.Loader(t, batch_size=2, features=["x"], label="y", sampling=Balanced("y"), cache="memory")
    assert all(b["label"].tolist().count(1) == 1 for b in cached)


# -- transform pipelines in the loader ---------------------------------------------------------


def test_a_pipeline_runs_inside_the_loader(table: lf.Table) -> None:
    pipe = lt.Pipeline([lt.StandardScaler(columns=["x"]), lt.OneHotEncoder(columns=["country"])]).fit(table)
    assert pipe.output_columns == ["x", "country_de", "country_fr", "country_us"]
    loader = _loader(table, features=pipe.output_columns, columns=["id"], transform=pipe)
    expected = pipe.transform(table.scan(columns=["id", "x", "country"]).to_arrow())
    by_id = {
        i: row for i, row in zip(expected.column("id").to_pylist(), expected.drop(["id"]).to_pylist(), strict=True)
    }
    seen = 0
    for batch in loader:
        for i, row in zip(batch["id"].tolist(), batch["features"], strict=True):
            want = by_id[i]
            assert row.tolist() == pytest.approx(
                np.array([want[c] for c in pipe.output_columns], dtype=np.float32).tolist()
            )
            seen += 1
    assert seen == N
    assert loader.output_schema.field("country_fr").type == pa.float64()


def test_pipeline_errors_in_the_loader(table: lf.Table) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        _loader(table, features=["x"], transform=lt.Pipeline([lt.StandardScaler(columns=["x"])]))
    fitted = lt.Pipeline([lt.OneHotEncoder(columns=["country"])]).fit(table)
    with pytest.raises(ColumnNotFoundError, match="country_xx"):
        _loader(table, features=["country_xx"], transform=fitted)
    with pytest.raises(ConfigError, match="transform must be"):
        _loader(table, transform=42)


def test_a_state_with_another_pipeline_is_refused(table: lf.Table) -> None:
    a = lt.Pipeline([lt.StandardScaler(columns=["x"])]).fit(table)
    b = lt.Pipeline([lt.MinMaxScaler(columns=["x"])]).fit(table)
    state = _loader(table, transform=a).state_dict()
    with pytest.raises(ResumeStateError, match="transform"):
        _loader(table, transform=b).load_state_dict(state)
