"""Batches finished ahead in the loader's threads (``Loader.iterate``), and the many-core paths."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf
from tests.conftest import table_of_files

N = 20_000


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    parts = []
    for start, size in ((0, 7_000), (7_000, 5_000), (12_000, 8_000)):
        ids = np.arange(start, start + size)
        parts.append(pa.table({"id": ids, "x": ids * 0.5, "z": (ids % 7).astype(np.int32), "y": ids % 3}))
    return table_of_files(lf.Warehouse(tmp_path_factory.mktemp("handoff")), "h.t", parts, row_group_rows=1000)


def _loader(table: lf.Table, **kwargs: object) -> lf.Loader:
    options: dict[str, object] = {"batch_size": 96, "features": ["x", "z"], "label": "y", "columns": ["id"], "seed": 4}
    options.update(kwargs)
    return lf.Loader(table, target_bytes=40_000, shuffle_buffer=2048, **options)  # type: ignore[arg-type]


def _finish(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in batch.items()}  # what the thread hands over is the consumer's own


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(("lakefeed-gather", "lakefeed-finish"))}


@pytest.mark.parametrize("kwargs", [{}, {"cache": "memory"}, {"rank": 1, "world_size": 2}, {"shuffle": False}])
def test_finished_batches_are_the_batches_and_resume_exactly(table: lf.Table, kwargs: dict[str, object]) -> None:
    full = list(_loader(table, **kwargs))
    assert len(full) > 20
    finished = list(_loader(table, **kwargs).iterate(_finish))
    assert len(finished) == len(full)
    for got, want in zip(finished, full, strict=True):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    for k in (0, 7, len(full) - 2):
        loader = _loader(table, **kwargs)
        taken = loader.iterate(_finish, ahead=4)
        for _ in range(k + 1):
            next(taken)
        state = loader.state_dict()  # the threads are batches ahead: the state counts what was taken
        assert state["batch"] == k + 1
        taken.close()
        resumed = _loader(table, **kwargs)
        resumed.load_state_dict(state)
        tail = list(resumed.iterate(_finish))
        assert len(tail) == len(full) - (k + 1)
        for got, want in zip(tail, full[k + 1 :], strict=True):
            np.testing.assert_array_equal(got["id"], want["id"])
            np.testing.assert_array_equal(got["features"], want["features"])
    assert not _threads()


def test_leaving_early_stops_the_threads(table: lf.Table) -> None:
    loader = _loader(table)
    for i, _ in enumerate(loader.iterate(_finish, ahead=2)):
        if i == 3:
            break
    assert not _threads()
    assert loader.state_dict()["batch"] == 4
    assert loader.epoch == 0  # the epoch did not end


def test_an_error_in_finish_reaches_the_consumer(table: lf.Table) -> None:
    def finish(batch: dict[str, np.ndarray]) -> object:
        if batch["id"].max() >= 0 and finish.calls == 5:  # type: ignore[attr-defined]
            raise ValueError("the device is full")
        finish.calls += 1  # type: ignore[attr-defined]
        return batch

    finish.calls = 0  # type: ignore[attr-defined]
    loader = _loader(table)
    got: list[object] = []
    with pytest.raises(ValueError, match="the device is full"):
        got.extend(loader.iterate(finish))
    assert len(got) == 5
    assert loader.state_dict()["batch"] == 5
    assert not _threads()


def test_many_threads_transpose_in_parallel_and_lose_no_row(table: lf.Table) -> None:
    # 8 threads: blocks are transposed by helper threads in pieces, and with few lanes the
    # tasks decode their columns in parallel; every value must still sit in its row
    loader = _loader(table, num_threads=8, memory_budget=500_000)
    assert loader.lanes * 2 < loader.num_threads
    assert all(t.plan.use_threads for t in loader._tasks)
    batches = list(loader)
    ids = np.concatenate([b["id"] for b in batches])
    assert sorted(ids.tolist()) == list(range(N))
    for b in batches:
        np.testing.assert_array_equal(b["features"][:, 0], b["id"] * 0.5)
        np.testing.assert_array_equal(b["features"][:, 1], (b["id"] % 7).astype(np.float32))
        np.testing.assert_array_equal(b["label"], b["id"] % 3)
    again = np.concatenate([b["id"] for b in _loader(table, num_threads=8, memory_budget=500_000)])
    np.testing.assert_array_equal(ids, again)  # threads do not change the order


def test_iterate_with_rows_only_hands_out_cache_positions(table: lf.Table) -> None:
    loader = _loader(table, cache="memory")
    cached = loader.cached_columns()
    full = list(_loader(table, cache="memory"))
    positions = list(loader.iterate(lambda b: b["rows"], rows_only=True))
    for rows, want in zip(positions, full, strict=True):
        np.testing.assert_array_equal(cached["id"][rows], want["id"])
        np.testing.assert_array_equal(cached["features"][rows], want["features"])
    with pytest.raises(lf.errors.ConfigError, match="cache='memory'"):
        _loader(table).cached_columns()


def _peek_in_a_fork(orders: object, out: object) -> None:
    out.put(orders.peek("k", 1, lambda epoch: np.array([epoch * 10])).tolist())  # type: ignore[attr-defined]


def test_orders_are_drawn_one_epoch_ahead_and_a_fork_does_not_wait_for_them() -> None:
    import multiprocessing
    import warnings

    from lakefeed.loader.support import OrdersAhead

    release, calls = threading.Event(), []

    def draw(epoch: int) -> np.ndarray:
        calls.append(epoch)
        if epoch == 1:
            release.wait(10)
        return np.array([epoch])

    orders = OrdersAhead()
    assert orders.take("k", 0, draw).tolist() == [0]  # and epoch 1 starts being drawn in a thread
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_peek_in_a_fork, args=(orders, out))
    with warnings.catch_warnings():  # Python 3.12+ warns about forking a process with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    child.join(timeout=20)
    assert child.exitcode == 0
    assert out.get(timeout=5) == [10]  # drawn in the child: the parent's thread is not there
    release.set()
    assert orders.take("k", 1, draw).tolist() == [1]  # the order drawn ahead
    assert orders.peek("k", 2, draw).tolist() == [2]
    assert calls.count(1) == 1
    assert sorted(set(calls)) == [0, 1, 2]
    assert orders.take("k", 0, draw).tolist() == [0]  # an epoch no longer kept is drawn again
    assert orders.take("other", 0, lambda e: np.array([99])).tolist() == [99]  # another key: its own orders
    with pytest.raises(ValueError, match="read-only"):
        orders.peek("other", 0, draw)[0] = 5


def test_a_failed_draw_is_forgotten_not_waited_for() -> None:
    from lakefeed.loader.support import OrdersAhead

    failures = {0: 1, 1: 1}  # epoch -> draws that fail

    def draw(epoch: int) -> np.ndarray:
        if failures.get(epoch, 0):
            failures[epoch] -= 1
            raise MemoryError(f"epoch {epoch}")
        return np.array([epoch])

    orders = OrdersAhead()
    with pytest.raises(MemoryError, match="epoch 0"):
        orders.take("k", 0, draw)
    assert orders.take("k", 0, draw).tolist() == [0]  # drawn again; epoch 1's draw fails in its thread
    with pytest.raises(MemoryError, match="epoch 1"):
        orders.take("k", 1, draw)
    assert orders.take("k", 1, draw).tolist() == [1]
