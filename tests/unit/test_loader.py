"""The loader: every row once per epoch, equal batches on every rank, exact resume, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import ColumnNotFoundError, ConfigError, ResumeStateError, SchemaError
from tests.conftest import UNEVEN_SIZES, table_of_files, uneven_table

N = sum(UNEVEN_SIZES)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    return uneven_table(tmp_path_factory.mktemp("loader"))


def _loader(table: lf.Table, **kwargs: object) -> lf.Loader:
    options: dict[str, object] = {"batch_size": 64, "features": ["x", "z", "flag"], "label": "y", "columns": ["id"]}
    options.update(kwargs)
    return lf.Loader(table, target_bytes=20_000, shuffle_buffer=1024, **options)  # type: ignore[arg-type]


def _ids(batches: object) -> np.ndarray:
    return np.concatenate([b["id"] for b in batches]) if batches else np.array([], np.int64)  # type: ignore[attr-defined]


def test_batches_hold_the_right_arrays(table: lf.Table) -> None:
    batch = next(iter(_loader(table)))
    assert batch["features"].dtype == np.float32
    assert batch["features"].shape == (64, 3)
    assert batch["features"].flags["C_CONTIGUOUS"]
    ids = batch["id"]
    np.testing.assert_array_equal(batch["features"][:, 0], (ids * 0.5).astype(np.float32))
    np.testing.assert_array_equal(batch["features"][:, 1], ids % 7)
    np.testing.assert_array_equal(batch["features"][:, 2], ids % 2 == 0)
    np.testing.assert_array_equal(batch["label"], ids % 3)


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_row_exactly_once_per_epoch(table: lf.Table, shuffle: bool) -> None:
    loader = _loader(table, shuffle=shuffle)
    assert len(loader._tasks) > 5
    for _ in range(2):
        ids = _ids(list(loader))
        assert len(ids) == N
        np.testing.assert_array_equal(np.sort(ids), np.arange(N))
    if not shuffle:  # unshuffled: the scan's own order
        in_scan_order = np.concatenate([b.column("id").to_numpy() for t in loader._tasks for b in t.read()])
        np.testing.assert_array_equal(ids, in_scan_order)


def test_order_is_a_function_of_seed_and_epoch(table: lf.Table) -> None:
    a, b = _loader(table, seed=5), _loader(table, seed=5)
    first = _ids(list(a))
    np.testing.assert_array_equal(first, _ids(list(b)))
    second = _ids(list(a))  # the next epoch
    assert not np.array_equal(first, second)
    b.set_epoch(1)
    np.testing.assert_array_equal(second, _ids(list(b)))
    assert not np.array_equal(first, _ids(list(_loader(table, seed=6))))


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize("uneven", ["pad", "drop"])
def test_ranks_get_equal_batches_and_all_rows(table: lf.Table, world: int, uneven: str) -> None:
    loaders = [_loader(table, rank=r, world_size=world, uneven=uneven, seed=2) for r in range(world)]
    per_rank = [_ids(list(loader)) for loader in loaders]
    batches = [len(loader) for loader in loaders]
    assert len(set(batches)) == 1, batches
    assert len({len(ids) for ids in per_rank}) == 1
    everything = np.concatenate(per_rank)
    if uneven == "drop":
        assert len(everything) == (N // world) * world
        assert len(np.unique(everything)) == len(everything), "a row was read twice"
    else:
        assert len(everything) == -(-N // world) * world
        np.testing.assert_array_equal(np.unique(everything), np.arange(N))  # no row lost
        assert len(everything) - N < world  # only the padding repeats


@pytest.mark.parametrize("kwargs", [{}, {"rank": 1, "world_size": 3}, {"cache": "memory"}, {"shuffle": False}])
def test_resume_after_any_batch_is_exact(table: lf.Table, kwargs: dict[str, object]) -> None:
    full = list(_loader(table, seed=9, **kwargs))
    for k in (0, 1, 17, len(full) - 2):
        loader = _loader(table, seed=9, **kwargs)
        iterator = iter(loader)
        for _ in range(k + 1):
            next(iterator)
        state = loader.state_dict()
        resumed = _loader(table, seed=9, **kwargs)
        resumed.load_state_dict(state)
        tail = list(resumed)
        assert len(tail) == len(full) - (k + 1)
        for got, want in zip(tail, full[k + 1 :], strict=True):
            for key in want:
                np.testing.assert_array_equal(got[key], want[key])


def test_resume_across_epochs(table: lf.Table) -> None:
    loader = _loader(table, seed=1)
    list(loader)
    state = loader.state_dict()
    assert state["epoch"] == 1
    assert state["batch"] == 0
    other = _loader(table, seed=1)
    other.load_state_dict(state)
    np.testing.assert_array_equal(_ids(list(other)), _ids(list(loader)))


@pytest.mark.parametrize(
    ("change", "named"),
    [({"seed": 2}, "seed"), ({"batch_size": 32}, "batch_size"), ({"rank": 1, "world_size": 2}, "rank")],
)
def test_state_from_another_configuration_is_refused(table: lf.Table, change: dict[str, object], named: str) -> None:
    state = _loader(table).state_dict()
    with pytest.raises(ResumeStateError, match=named):
        _loader(table, **change).load_state_dict(state)
    with pytest.raises(ResumeStateError, match="not a lakefeed loader state"):
        _loader(table).load_state_dict({"epoch": 3})


def test_state_from_another_snapshot_is_refused(tmp_path: Path) -> None:
    t = lf.Warehouse(tmp_path).create_table("l.s", pa.table({"x": [1.0, 2.0]}))
    state = lf.Loader(t, batch_size=1, features=["x"]).state_dict()
    t.append(pa.table({"x": [3.0]}))
    with pytest.raises(ResumeStateError, match="snapshot_id"):
        lf.Loader(t, batch_size=1, features=["x"]).load_state_dict(state)


def test_shuffle_quality_on_a_sorted_table(table: lf.Table) -> None:
    from scipy.stats import spearmanr

    streaming = lf.Loader(table, batch_size=64, features=["x"], columns=["id"], seed=0)
    ids = _ids(list(streaming))
    rho = spearmanr(ids, np.arange(len(ids))).statistic
    assert abs(rho) < 0.05, rho
    reported = streaming.stats()["shuffle_spearman"]
    assert reported is not None
    assert abs(reported - rho) < 0.05
    cached = lf.Loader(table, batch_size=64, features=["x"], columns=["id"], seed=0, cache="memory")
    list(cached)
    ids = _ids(list(cached))
    assert abs(spearmanr(ids, np.arange(len(ids))).statistic) < 0.01


def test_cached_orders_drawn_ahead_are_the_orders_of_their_epochs(table: lf.Table) -> None:
    # the next epoch's order is drawn in a thread while one runs: the same order as drawn on demand
    a = _loader(table, seed=3, cache="memory")
    epoch0 = _ids(list(a))
    partial = [b["id"] for _, b in zip(range(3), a, strict=False)]  # epoch 1, left after 3 batches
    epoch1 = _ids(list(a))  # a new iteration starts epoch 1 again
    epoch2 = _ids(list(a))
    np.testing.assert_array_equal(np.concatenate(partial), epoch1[: sum(len(p) for p in partial)])
    for epoch, ids in enumerate([epoch0, epoch1, epoch2]):
        fresh = _loader(table, seed=3, cache="memory")
        fresh.set_epoch(epoch)
        np.testing.assert_array_equal(ids, _ids(list(fresh)))
        assert sorted(ids.tolist()) == list(range(N))
    assert not np.array_equal(epoch1, epoch2)


def test_cache_order_is_read_only_and_follows_the_seed(table: lf.Table) -> None:
    loader = _loader(table, seed=3, cache="memory")
    order = loader.cache_order()
    with pytest.raises(ValueError, match="read-only"):
        order[:] = 0
    first = _ids(list(loader))
    np.testing.assert_array_equal(first, loader.cached_columns()["id"][order])
    loader.seed = 4  # the order drawn ahead for epoch 1 under seed 3 is not used
    cached_ids = loader.cached_columns()["id"]
    seed4 = np.random.default_rng([4, 1, 0, 1, 0xCAC]).permutation(len(cached_ids))  # (seed, epoch, rank, world)
    np.testing.assert_array_equal(_ids(list(loader)), cached_ids[seed4])
    with pytest.raises(ConfigError, match="epoch must be >= 0"):
        loader.cache_order(-1)


def test_an_empty_table_with_a_cache_yields_nothing(tmp_path: Path) -> None:
    empty = lf.Warehouse(tmp_path).create_table("l.empty_cached", pa.schema([("x", pa.float64()), ("y", pa.int64())]))
    loader = lf.Loader(empty, batch_size=4, features=["x"], label="y", cache="memory")
    assert list(loader) == []
    assert list(loader.iterate(rows_only=True)) == []
    assert len(loader) == 0


@pytest.mark.parametrize("shuffle", [True, False])
def test_shuffle_statistic_of_cached_positions(table: lf.Table, shuffle: bool) -> None:
    # iterate(rows_only=True) samples table positions without gathering whole batches
    from scipy.stats import spearmanr

    scan_position = np.empty(N, np.int64)  # the statistic compares with the scan's order (the files' order)
    scan_position[_ids(list(_loader(table, shuffle=False)))] = np.arange(N)
    loader = _loader(table, seed=0, cache="memory", shuffle=shuffle)
    ids = np.concatenate([loader.cached_columns()["id"][b["rows"]] for b in loader.iterate(rows_only=True)])
    rho = spearmanr(scan_position[ids], np.arange(len(ids))).statistic
    reported = loader.stats()["shuffle_spearman"]
    assert reported is not None
    assert reported == pytest.approx(rho, abs=0.05)
    assert abs(rho) < 0.05 if shuffle else rho == pytest.approx(1.0)


def test_drop_last(table: lf.Table) -> None:
    loader = _loader(table, drop_last=True)
    sizes = [len(b["id"]) for b in loader]
    assert set(sizes) == {64}
    assert len(sizes) == N // 64 == len(loader)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"features": ["nope"]}, ColumnNotFoundError, "nope"),
        ({"features": ["name"]}, SchemaError, "not a number"),
        ({"batch_size": 0}, ConfigError, "positive"),
        ({"rank": 2, "world_size": 2}, ConfigError, "rank must be"),
        ({"uneven": "wrap"}, ConfigError, "pad"),
        ({"cache": "ram"}, ConfigError, "cache"),
    ],
)
def test_bad_arguments(table: lf.Table, kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _loader(table, **kwargs)


def test_empty_table_yields_nothing(tmp_path: Path) -> None:
    t = lf.Warehouse(tmp_path).create_table("l.e", pa.schema([("x", pa.float64())]))
    loader = lf.Loader(t, batch_size=8, features=["x"])
    assert list(loader) == []
    assert len(loader) == 0
    filtered = lf.Loader(
        lf.Warehouse(tmp_path).create_table("l.f", pa.table({"x": [1.0]})),
        batch_size=8,
        features=["x"],
        filter=lf.col("x") > 5.0,
    )
    assert list(filtered) == []


def test_nulls_in_features(tmp_path: Path) -> None:
    t = lf.Warehouse(tmp_path).create_table("l.n", pa.table({"x": [1.0, None, 3.0]}))
    with pytest.raises(SchemaError, match="feature 'x' has 1 null"):
        list(lf.Loader(t, batch_size=8, features=["x"]))
    batch = next(iter(lf.Loader(t, batch_size=8, features=["x"], fill_null=0.0, shuffle=False)))
    np.testing.assert_array_equal(batch["features"][:, 0], [1.0, 0.0, 3.0])


def test_filter_and_strings_pass_through(table: lf.Table) -> None:
    loader = _loader(table, filter=lf.col("z") == 3, columns=["id", "name"])
    rows = list(loader)
    ids = _ids(rows)
    np.testing.assert_array_equal(np.sort(ids), np.arange(N)[np.arange(N) % 7 == 3])
    names = np.concatenate([b["name"] for b in rows])
    assert [f"n{i}" for i in ids[:5]] == list(names[:5])


@pytest.mark.parametrize("ahead", [False, True], ids=["iter", "iterate-ahead"])
def test_a_file_removed_during_the_epoch(tmp_path: Path, ahead: bool) -> None:
    wh = lf.Warehouse(tmp_path)
    t = wh.create_table("l.gone", pa.table({"x": np.arange(5000, dtype=np.float64)}))
    for i in range(3):
        t.append(pa.table({"x": np.arange(5000, dtype=np.float64) + i}))
    loader = lf.Loader(
        t, batch_size=100, features=["x"], shuffle=False, target_bytes=10_000, shuffle_buffer=500, prefetch=1
    )
    # ahead: batches made in the loader's threads (Loader.iterate): the error still reaches the loop
    iterator = loader.iterate(lambda b: b, ahead=1) if ahead else iter(loader)
    next(iterator)
    Path(loader._tasks[-1].files[0]).unlink()
    with pytest.raises(lf.errors.DataFileNotFoundError):
        list(iterator)


def test_stats(table: lf.Table) -> None:
    loader = _loader(table)
    list(loader)
    stats = loader.stats()
    assert stats["rows"] == N
    assert stats["batches"] == len(loader)
    assert stats["bytes_decoded"] > 0
    assert stats["rows_per_second"] > 0


def test_a_new_iteration_restarts_the_epoch_unless_a_state_was_loaded(table: lf.Table) -> None:
    loader = _loader(table, seed=4)
    full = _ids(list(_loader(table, seed=4)))
    it = iter(loader)
    next(it)
    next(it)
    state = loader.state_dict()
    np.testing.assert_array_equal(_ids(list(loader)), full)  # broke off: the epoch starts over
    loader.load_state_dict(state)
    np.testing.assert_array_equal(_ids(list(loader)), full[128:])


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> tuple[lf.Table, dict[int, list[int]]]:
    """Rows with variable-length id lists (some empty, some null) in uneven files."""
    rng = np.random.default_rng(7)
    reference: dict[int, list[int]] = {}
    parts = []
    start = 0
    for size in [900, 57, 2_400]:
        ids = np.arange(start, start + size)
        tags: list[list[int] | None] = []
        for i in ids:
            n = int(rng.integers(0, 6))
            row = None if i % 97 == 5 else [int(v) for v in rng.integers(0, 1000, n)]
            tags.append(row)
            reference[int(i)] = row or []
        parts.append(pa.table({"id": pa.array(ids, pa.int64()), "x": ids.astype(np.float32), "tags": pa.array(tags)}))
        start += size
    wh = lf.Warehouse(tmp_path_factory.mktemp("lists"))
    return table_of_files(wh, "l.lists", parts, row_group_rows=500), reference


def _rows_of(batch: dict[str, object], name: str) -> list[list[int]]:
    values, starts = batch[name]  # type: ignore[misc]
    bounds = [*starts.tolist(), len(values)]
    return [values[bounds[i] : bounds[i + 1]].tolist() for i in range(len(starts))]


@pytest.mark.parametrize("kwargs", [{}, {"shuffle": False}, {"cache": "memory"}, {"cache": "disk"}])
def test_variable_length_lists_come_as_values_and_offsets(
    lists: tuple[lf.Table, dict[int, list[int]]], kwargs: dict[str, object]
) -> None:
    table, reference = lists
    loader = lf.Loader(
        table, batch_size=37, features=["x"], columns=["id", "tags"], target_bytes=5_000, shuffle_buffer=300, **kwargs
    )  # type: ignore[arg-type]
    seen = []
    for _ in range(2):  # with a cache, the second epoch reads it
        for batch in loader:
            values, starts = batch["tags"]
            assert (values.dtype, starts.dtype) == (np.int64, np.int64)
            assert len(starts) == len(batch["id"])
            assert [reference[int(i)] for i in batch["id"]] == _rows_of(batch, "tags")
            seen.extend(batch["id"].tolist())
    assert sorted(seen) == sorted(2 * list(reference))


def test_lists_resume_exactly(lists: tuple[lf.Table, dict[int, list[int]]]) -> None:
    table, _ = lists

    def make() -> lf.Loader:
        return lf.Loader(table, batch_size=50, columns=["id", "tags"], target_bytes=5_000, shuffle_buffer=300, seed=2)

    full = [_rows_of(b, "tags") for b in make()]
    loader = make()
    it = iter(loader)
    for _ in range(17):
        next(it)
    state = loader.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    assert [_rows_of(b, "tags") for b in resumed] == full[17:]


def test_nulls_inside_lists_need_a_fill_value(tmp_path: Path) -> None:
    t = lf.Warehouse(tmp_path).create_table("l.ln", pa.table({"v": pa.array([[1.0, None], [2.0]])}))
    with pytest.raises(SchemaError, match="'v' has 1 null value"):
        list(lf.Loader(t, batch_size=4, columns=["v"]))
    batch = next(iter(lf.Loader(t, batch_size=4, columns=["v"], fill_null=-1.0, shuffle=False)))
    assert _rows_of(batch, "v") == [[1.0, -1.0], [2.0]]


def test_structs_are_refused(tmp_path: Path) -> None:
    t = lf.Warehouse(tmp_path).create_table("l.st", pa.table({"s": pa.array([{"a": 1}])}))
    with pytest.raises(lf.errors.UnsupportedOperationError, match="select their fields"):
        lf.Loader(t, batch_size=4, columns=["s"])


@pytest.mark.parametrize("lanes", [1, 3, 16])
def test_few_large_tasks_still_shuffle_well(lanes: int) -> None:
    """16 files of 125k rows (the benchmark's shape): the plan alone keeps |rho| small every epoch."""
    from scipy.stats import spearmanr

    from lakefeed.loader.plan import plan_epoch

    counts = [125_000] * 16
    first = np.concatenate([[0], np.cumsum(counts)])
    for epoch in range(6):
        plan = plan_epoch(
            counts, seed=0, epoch=epoch, rank=0, world_size=1, shuffle=True, block_rows=82_304, lanes=lanes
        )
        blocks = [
            np.concatenate([np.arange(first[s.task] + s.start, first[s.task] + s.stop) for s in b]) for b in plan.blocks
        ]
        table_position = np.concatenate(blocks)
        # rows of a block come out in a random order: ties within a block are broken at random
        rng = np.random.default_rng(epoch)
        output = np.concatenate(
            [rng.permutation(len(b)) + sum(len(x) for x in blocks[:i]) for i, b in enumerate(blocks)]
        )
        assert sorted(table_position.tolist()) == list(range(2_000_000))
        assert abs(spearmanr(table_position, output)[0]) < 0.02, (epoch, lanes)


def test_fixed_size_lists_come_as_2d_arrays(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    vectors = np.arange(30, dtype=np.float32).reshape(10, 3)
    data = pa.table({"id": np.arange(10), "v": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 3)})
    pq.write_table(data, tmp_path / "part.parquet")
    batches = list(lf.Loader(f"parquet://{tmp_path}", batch_size=4, columns=["id", "v"], seed=1))
    for batch in batches:
        assert batch["v"].shape == (len(batch["id"]), 3)
        np.testing.assert_array_equal(batch["v"], vectors[batch["id"]])
    assert sorted(np.concatenate([b["id"] for b in batches]).tolist()) == list(range(10))


@pytest.mark.parametrize("prefetch", [1, 3])
def test_every_batch_holds_its_own_rows_while_block_memory_is_reused(table: lf.Table, prefetch: int) -> None:
    loader = _loader(table, prefetch=prefetch)
    kept = []
    for batch in loader:  # batches are kept: a reused block must never show through them
        kept.append(batch)
    for batch in kept:
        ids = batch["id"]
        np.testing.assert_array_equal(batch["features"][:, 0], (ids * 0.5).astype(np.float32))
        np.testing.assert_array_equal(batch["features"][:, 1], (ids % 7).astype(np.float32))
    assert sorted(_ids(kept).tolist()) == list(range(N))


def test_label_and_columns_are_cast_as_asked(table: lf.Table) -> None:
    batch = next(iter(_loader(table, dtypes={"label": "float32", "id": "int32"})))
    assert batch["label"].dtype == np.float32
    assert batch["id"].dtype == np.int32
    np.testing.assert_array_equal(batch["label"], (batch["id"] % 3).astype(np.float32))
    with pytest.raises(ConfigError, match="does not yield"):
        _loader(table, dtypes={"nope": "float32"})
    with pytest.raises(ConfigError, match="not a numpy dtype"):
        _loader(table, dtypes={"label": "floaty"})
