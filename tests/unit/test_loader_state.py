"""The loader's position and order: who moves it, when an epoch ends, what the order depends on,
and the arguments and outputs that could silently corrupt either."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ConfigError, ResumeStateError
from tests.conftest import UNEVEN_SIZES, uneven_table

N = sum(UNEVEN_SIZES)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    return uneven_table(tmp_path_factory.mktemp("state"))


def _loader(table: lf.Table, **kwargs: object) -> lf.Loader:
    options: dict[str, object] = {"batch_size": 64, "features": ["x"], "label": "y", "columns": ["id"], "seed": 3}
    options.update(kwargs)
    return lf.Loader(table, target_bytes=20_000, shuffle_buffer=1024, **options)  # type: ignore[arg-type]


def _ids(batches: object) -> list[int]:
    return [int(i) for b in batches for i in b["id"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("budget", [60_000, 200_000, 1_000_000])
def test_the_order_does_not_depend_on_threads_or_prefetch(table: lf.Table, budget: int) -> None:
    # A state saved on a machine with few cores must resume exactly on one with many: the
    # number of lanes (and so the order) is a function of the settings, not of the machine.
    small = _loader(table, num_threads=2, prefetch=1, memory_budget=budget)
    large = _loader(table, num_threads=16, prefetch=6, memory_budget=budget)
    assert small.lanes == large.lanes
    it = iter(small)
    head = _ids(islice(it, 7))
    large.load_state_dict(small.state_dict())
    rest = _ids(large)
    it.close()
    assert sorted(head + rest) == list(range(N))
    assert head + rest == _ids(_loader(table, memory_budget=budget))


def test_a_state_planned_with_other_lanes_is_refused(table: lf.Table) -> None:
    few, many = _loader(table, memory_budget=60_000), _loader(table, memory_budget=1_000_000)
    assert few.lanes != many.lanes
    with pytest.raises(ResumeStateError, match=r"lanes: saved \d+, here \d+"):
        many.load_state_dict(few.state_dict())


def test_the_epoch_ends_with_its_last_batch(table: lf.Table) -> None:
    # islice / zip(range(steps), loader) / steps_per_epoch never ask for a batch past the last
    loader = _loader(table)
    n = len(loader)
    first = _ids(islice(loader, n))
    assert loader.state_dict()["epoch"] == 1
    assert loader.state_dict()["batch"] == 0
    second = _ids(islice(loader, n))
    assert loader.epoch == 2
    assert sorted(first) == sorted(second) == list(range(N))
    assert first != second  # epoch 1's order, not epoch 0's again
    reference = _loader(table)
    reference.set_epoch(1)
    assert second == _ids(reference)


def test_set_epoch_after_load_state_dict_keeps_the_position(table: lf.Table) -> None:
    epochs = 2
    full = _loader(table)
    expected = []
    for epoch in range(epochs):
        full.set_epoch(epoch)
        expected.extend(_ids(full))
    before = _loader(table)
    before.set_epoch(1)
    it = iter(before)
    head = _ids(islice(it, 5))
    state = before.state_dict()
    it.close()
    resumed = _loader(table)
    resumed.load_state_dict(state)
    got: list[int] = []
    for epoch in range(state["epoch"], epochs):  # the usual loop
        resumed.set_epoch(epoch)
        got.extend(_ids(resumed))
    assert expected[N:] == head + got
    # another epoch than the saved one does start that epoch from its first batch
    other = _loader(table)
    other.load_state_dict(state)
    other.set_epoch(0)
    assert _ids(other) == expected[:N]


def test_only_the_latest_iteration_moves_the_position(table: lf.Table) -> None:
    loader = _loader(table)
    old = iter(loader)
    _ids(islice(old, 3))
    loader.set_epoch(5)
    next(old)  # epoch 0's batch: it no longer counts
    assert loader.state_dict()["epoch"] == 5
    assert loader.state_dict()["batch"] == 0
    _ids(old)  # runs to its end without moving the loader to epoch 1
    assert loader.epoch == 5
    a, b = iter(loader), iter(loader)
    _ids(islice(a, 3))
    _ids(islice(b, 1))
    next(a)
    state = loader.state_dict()
    assert (state["epoch"], state["batch"]) == (5, 1)  # b's position: the latest iteration's
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"columns": ["label"]}, "label .*'y'.* and column 'label' would both be yielded as 'label'; drop or"),
        ({"columns": ["features"]}, "feature matrix and column 'features' would both be yielded as 'features'"),
        ({"columns": ["n", "n"]}, "column 'n' and column 'n' would both be yielded as 'n'"),
    ],
)
def test_outputs_with_the_same_name_are_refused(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    data = pa.table({"x": [1.0], "y": [0], "label": ["a"], "features": [1], "n": [2]})
    t = lf.Warehouse(tmp_path).create_table("c.t", data)
    options: dict[str, object] = {"batch_size": 1, "features": ["x"], "label": "y"}
    options.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        lf.Loader(t, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("cache", [None, "memory"])
def test_a_transform_that_drops_rows_is_refused(table: lf.Table, cache: str | None) -> None:
    def keep_even(block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        even = block["id"] % 2 == 0
        return {k: v[even] for k, v in block.items()}

    loader = _loader(table, transform=keep_even, cache=cache)
    with pytest.raises(ConfigError, match=r"transform returned \d+ rows for '\w+' from a block of \d+; .* keep every"):
        list(loader)


@pytest.mark.parametrize(
    "sampling", [lf.samplers.Weighted("w"), lf.samplers.Balanced("y"), lf.samplers.Stratified("y", shares={0: 1.0})]
)
def test_an_empty_table_with_sampling_yields_nothing(tmp_path: Path, sampling: object) -> None:
    schema = pa.schema([("x", pa.float64()), ("y", pa.int64()), ("w", pa.float64())])
    empty = lf.Warehouse(tmp_path).create_table("e.t", schema.empty_table())
    loader = lf.Loader(empty, batch_size=4, features=["x"], label="y", sampling=sampling)  # type: ignore[arg-type]
    assert len(loader) == 0
    assert list(loader) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, r"seed must be an int >= 0, got -1"),
        ({"seed": 1.5}, r"seed must be an int >= 0, got 1.5"),
        ({"num_threads": -1}, r"num_threads must be a positive int, got -1"),
        ({"prefetch": -2}, r"prefetch must be an int >= 0, got -2"),
        ({"rank": 1.5, "world_size": 2}, r"rank must be an int >= 0, got 1.5"),
        ({"world_size": 0}, r"world_size must be a positive int, got 0"),
        ({"batch_size": True}, r"batch_size must be a positive int, got True"),
    ],
)
def test_bad_numbers_are_refused(table: lf.Table, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _loader(table, **kwargs)


def test_numpy_integers_are_numbers(table: lf.Table) -> None:
    loader = _loader(table, batch_size=np.int64(64), seed=np.int32(3), rank=np.int64(1), world_size=np.int64(2))
    assert _ids(loader) == _ids(_loader(table, rank=1, world_size=2))


def test_a_disk_cache_leaves_no_files(table: lf.Table, tmp_path: Path) -> None:
    loader = _loader(table, cache="disk", cache_dir=tmp_path)
    first = _ids(loader)
    assert list(tmp_path.iterdir()) == []  # the arrays stay mapped; their names are gone
    assert sorted(_ids(loader)) == sorted(first) == list(range(N))


def test_many_threads_decode_within_the_memory_budget(table: lf.Table) -> None:
    budget = 400_000
    loader = _loader(table, num_threads=64, memory_budget=budget)
    task = max(t.estimated_bytes for t in loader._tasks)
    block = loader.block_rows * loader._row_bytes()
    held = block * (loader.prefetch + 2) + (loader.lanes + loader.decoders) * 2 * task
    assert 1 <= loader.decoders < 64
    assert held <= budget or loader.decoders == 2  # two decode at once, however small the budget
    assert sorted(_ids(loader)) == list(range(N))


def test_a_state_is_json_whatever_form_the_dtypes_take(table: lf.Table) -> None:
    import json

    loader = _loader(table, dtype=np.float32, dtypes={"label": np.dtype("int32")})
    again = _loader(table, dtype="float32", dtypes={"label": "int32"})
    it = iter(loader)
    next(it)
    state = json.loads(json.dumps(loader.state_dict()))  # what a checkpoint file holds
    again.load_state_dict(state)  # the same configuration, however it was spelled
    assert _ids(again) == _ids(it)
