"""PyTorch: tensors from the loader, and a model that learns from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.tables.base import ReadPlan, TablePart
from tests.conftest import DATA

torch = pytest.importorskip("torch", reason="torch is installed in the main environment")
pytestmark = [
    pytest.mark.torch,
    # 3 workers on a 2-core machine: torch warns; the tests want 3 to check uneven worker shards
    pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning"),
]


@pytest.fixture
def regression(tmp_path: Path) -> lf.Table:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 8)).astype(np.float32)
    w = np.arange(1, 9, dtype=np.float32) / 4
    y = x @ w + 0.05 * rng.standard_normal(20_000).astype(np.float32)
    data = pa.table({**{f"f{j}": x[:, j] for j in range(8)}, "y": y})
    return lf.Warehouse(tmp_path).create_table("t.reg", data)


def test_tensors_share_the_numpy_batch(regression: lf.Table) -> None:
    loader = lf.Loader(regression, batch_size=256, features=[f"f{j}" for j in range(8)], label="y")
    batch = next(iter(loader.torch()))
    assert batch["features"].dtype == torch.float32
    assert tuple(batch["features"].shape) == (256, 8)
    assert batch["features"].is_contiguous()
    assert len(loader.torch()) == len(loader)


def _train_linear(batches: object, epochs: int = 1) -> list[float]:
    """Fit a linear regression with SGD on the batches; the loss of every step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses: list[float] = []
    for _ in range(epochs):
        for batch in batches:  # type: ignore[attr-defined]
            loss = torch.nn.functional.mse_loss(model(batch["features"]).squeeze(1), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses


def test_a_model_learns_from_the_loader(regression: lf.Table) -> None:
    loader = lf.Loader(regression, batch_size=256, features=[f"f{j}" for j in range(8)], label="y", seed=0)
    per_batch = _train_linear(loader.torch(), epochs=2)
    first, last = np.mean(per_batch[:10]), np.mean(per_batch[-10:])
    assert last < 0.01 * first, (first, last)
    assert last < 0.01  # the noise floor is 0.05**2


def _make_uneven(home: Path) -> lf.Table:
    """1,003 rows with ids in uneven files (appends of different sizes)."""
    table = lf.Warehouse(home).create_table(
        "t.uneven", pa.table({"id": np.arange(0, 400, dtype=np.int64), "x": np.arange(0, 400, dtype=np.float32)})
    )
    for lo, hi in [(400, 437), (437, 1003)]:
        table.append(pa.table({"id": np.arange(lo, hi, dtype=np.int64), "x": np.arange(lo, hi, dtype=np.float32)}))
    return table


@pytest.fixture(scope="module")
def uneven(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    return _make_uneven(tmp_path_factory.mktemp("w"))


def _stream(batches: object) -> list[list[int]]:
    return [b["id"].tolist() for b in batches]  # type: ignore[attr-defined]


@pytest.mark.parametrize("workers", [0, 1, 3])
@pytest.mark.parametrize("world", [1, 2])
def test_dataloader_workers_split_the_rows(uneven: lf.Table, workers: int, world: int) -> None:
    per_rank = []
    for rank in range(world):
        ds = lf.torch_dataset(
            uneven, batch_size=32, features=["x"], columns=["id"], num_workers=workers, rank=rank, world_size=world
        )
        batches = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers))
        assert len(batches) == len(ds)
        assert all(isinstance(b["features"], torch.Tensor) for b in batches)
        per_rank.append(np.concatenate([b["id"].numpy() for b in batches]))
    assert len({len(ids) for ids in per_rank}) == 1  # every rank the same number of rows (and batches)
    seen = np.concatenate(per_rank)
    assert set(seen.tolist()) == set(range(1003))  # none lost
    assert len(seen) - 1003 < world * max(1, workers)  # repeated only to pad the shards


def test_the_stream_is_a_function_of_seed_and_epoch(uneven: lf.Table) -> None:
    def run(epoch: int) -> list[list[int]]:
        ds = lf.torch_dataset(uneven, batch_size=50, features=["x"], columns=["id"], num_workers=2, seed=3)
        ds.set_epoch(epoch)
        return _stream(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))

    assert run(0) == run(0)
    assert run(0) != run(1)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop_after", [1, 6, 13])
def test_dataloader_resumes_exactly(uneven: lf.Table, workers: int, stop_after: int) -> None:
    def dataset() -> lf.frameworks.torch.TorchDataset:
        return lf.torch_dataset(uneven, batch_size=40, features=["x"], columns=["id"], num_workers=workers, seed=5)

    full = dataset().dataloader()
    reference = _stream(full) + _stream(full)  # two epochs
    interrupted = dataset().dataloader()
    it = iter(interrupted)
    head = [next(it)["id"].tolist() for _ in range(stop_after)]
    state = interrupted.state_dict()
    del it
    resumed = dataset().dataloader()
    resumed.load_state_dict(state)
    rest = _stream(resumed) + _stream(resumed)
    assert head + rest[: len(reference) - stop_after] == reference
    assert len(rest) == len(reference) - stop_after


def test_a_state_from_another_worker_count_is_refused(uneven: lf.Table) -> None:
    two = lf.torch_dataset(uneven, batch_size=40, features=["x"], num_workers=2)
    state = two.dataloader().state_dict()
    with pytest.raises(lf.errors.ResumeStateError, match="num_workers=2"):
        lf.torch_dataset(uneven, batch_size=40, features=["x"], num_workers=3).load_state_dict(state)


def test_a_dataloader_with_other_workers_is_refused(uneven: lf.Table) -> None:
    ds = lf.torch_dataset(uneven, batch_size=40, features=["x"], num_workers=2)
    with pytest.raises(lf.errors.ConfigError, match="num_workers=3"):
        list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=3))


def test_a_model_learns_through_dataloader_workers(regression: lf.Table) -> None:
    ds = lf.torch_dataset(regression, batch_size=256, features=[f"f{j}" for j in range(8)], label="y", num_workers=2)
    losses = _train_linear(ds.dataloader(pin_memory=False))
    assert np.mean(losses[-10:]) < 0.05 * np.mean(losses[:10])


def test_persistent_workers_advance_epochs_like_fresh_ones(uneven: lf.Table) -> None:
    def two_epochs(**kwargs: object) -> list[list[int]]:
        ds = lf.torch_dataset(uneven, batch_size=64, features=["x"], columns=["id"], num_workers=2, seed=1)
        dl = ds.dataloader(**kwargs)
        return _stream(dl) + _stream(dl)

    fresh = two_epochs()
    assert two_epochs(persistent_workers=True) == fresh
    assert fresh[: len(fresh) // 2] != fresh[len(fresh) // 2 :]


def test_list_columns_feed_an_embedding_bag(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    tags = [[int(v) for v in rng.integers(0, 50, int(rng.integers(0, 5)))] for _ in range(500)]
    t = lf.Warehouse(tmp_path).create_table("t.bag", pa.table({"id": np.arange(500), "tags": pa.array(tags)}))
    bag = torch.nn.EmbeddingBag(50, 4, mode="sum")
    for batch in lf.Loader(t, batch_size=64, columns=["id", "tags"], seed=1).torch():
        values, offsets = batch["tags"]
        out = bag(values, offsets)
        expected = torch.stack([bag.weight[tags[int(i)]].sum(0) for i in batch["id"]])
        torch.testing.assert_close(out, expected)


DDP_SCRIPT = """
import json, os, sys
import numpy as np
import torch
import torch.distributed as dist
import lakefeed as lf

dist.init_process_group("gloo")
table = lf.Warehouse(sys.argv[1]).table("t.uneven")
loader = lf.Loader(table, batch_size=64, features=["x"], columns=["id"], seed=0)  # rank, world from torch.distributed
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(1, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
seen = []
for batch in loader.torch():
    loss = model(batch["features"]).pow(2).mean()  # DDP all-reduces gradients: a missing batch would hang
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    seen.extend(batch["id"].tolist())
with open(os.path.join(sys.argv[2], f"rank{dist.get_rank()}.json"), "w") as f:
    json.dump({"rank": loader.rank, "world": loader.world_size, "batches": len(loader), "ids": seen}, f)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_ddp_ranks_detect_themselves_and_never_hang(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    home = tmp_path / "wh"
    _make_uneven(home)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3"]
    proc = subprocess.run(
        [*cmd, str(script), str(home), str(tmp_path)], capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(3)]
    assert [(r["rank"], r["world"]) for r in results] == [(0, 3), (1, 3), (2, 3)]
    assert len({len(r["ids"]) for r in results}) == 1
    assert set().union(*[set(r["ids"]) for r in results]) == set(range(1003))


def test_cached_workers_resume_exactly(uneven: lf.Table) -> None:
    def loader() -> object:
        ds = lf.torch_dataset(uneven, batch_size=50, features=["x"], columns=["id"], num_workers=2, cache="memory")
        return ds.dataloader(persistent_workers=True)

    full = loader()
    reference = _stream(full) + _stream(full)
    first_epoch = {i for batch in reference[: len(reference) // 2] for i in batch}
    assert first_epoch == set(range(1003))  # (one row repeated as padding)
    interrupted = loader()
    it = iter(interrupted)  # type: ignore[call-overload]
    head = [next(it)["id"].tolist() for _ in range(7)]
    state = interrupted.state_dict()  # type: ignore[attr-defined]
    del it
    resumed = loader()
    resumed.load_state_dict(state)  # type: ignore[attr-defined]
    assert head + _stream(resumed) + _stream(resumed) == reference


def _ids_dataset(table: lf.Table, workers: int = 2) -> lf.frameworks.torch.TorchDataset:
    return lf.torch_dataset(table, batch_size=64, features=["x"], columns=["id"], num_workers=workers, seed=2)


def _two_epochs(table: lf.Table, workers: int = 2) -> list[list[int]]:
    """Epochs 0 and 1 through fresh (non-persistent) DataLoader workers."""
    dl = _ids_dataset(table, workers).dataloader()
    return _stream(dl) + _stream(dl)


@pytest.mark.parametrize("persistent", [False, True])
def test_a_dataloader_continues_after_a_break(uneven: lf.Table, persistent: bool) -> None:
    reference = _two_epochs(uneven)
    dl = _ids_dataset(uneven).dataloader(persistent_workers=persistent)
    it = iter(dl)
    head = [next(it)["id"].tolist() for _ in range(3)]
    del it
    assert head + _stream(dl) + _stream(dl) == reference


def test_persistent_workers_resume_from_a_state_loaded_while_they_run(uneven: lf.Table) -> None:
    reference = _two_epochs(uneven)
    per_epoch = len(reference) // 2
    dl = _ids_dataset(uneven).dataloader(persistent_workers=True)
    it = iter(dl)
    head = [next(it)["id"].tolist() for _ in range(3)]
    state = dl.state_dict()
    del it
    assert _stream(dl) == reference[3:per_epoch]  # the workers run from here on
    dl.load_state_dict(state)
    assert head + _stream(dl) + _stream(dl) == reference


def test_persistent_workers_follow_set_epoch(uneven: lf.Table) -> None:
    reference = _two_epochs(uneven)
    per_epoch = len(reference) // 2
    ds = _ids_dataset(uneven)
    dl = ds.dataloader(persistent_workers=True)
    assert _stream(dl) == reference[:per_epoch]
    ds.set_epoch(0)  # epoch 0 again (an evaluation pass, say)
    assert _stream(dl) == reference[:per_epoch]
    assert _stream(dl) == reference[per_epoch:]
    # a DataLoader of one's own, with set_epoch each epoch as the docs say
    ds = _ids_dataset(uneven)
    own = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    epochs = []
    for epoch in (0, 1, 0):
        ds.set_epoch(epoch)
        epochs.append(_stream(own))
    assert epochs == [reference[:per_epoch], reference[per_epoch:], reference[:per_epoch]]


def test_a_dataset_with_workers_refuses_a_plain_loader_state(uneven: lf.Table) -> None:
    plain = lf.Loader(uneven, batch_size=64, features=["x"], columns=["id"], seed=2)
    it = iter(plain)
    _ = [next(it) for _ in range(3)]
    state = plain.state_dict()
    with pytest.raises(lf.errors.ResumeStateError, match=r"plain Loader \(num_workers=0\).*num_workers=2"):
        _ids_dataset(uneven).load_state_dict(state)
    # a dataset without workers reads the loader's own stream: it takes the state and resumes it
    reference = list(lf.Loader(uneven, batch_size=64, features=["x"], columns=["id"], seed=2))
    ds = _ids_dataset(uneven, workers=0)
    ds.load_state_dict(state)
    assert _stream(ds) == [b["id"].tolist() for b in reference[3:]]


def test_a_plain_loader_refuses_a_state_of_dataloader_workers(uneven: lf.Table) -> None:
    dl = _ids_dataset(uneven).dataloader()
    it = iter(dl)
    _ = [next(it) for _ in range(3)]
    state = dl.state_dict()
    del it
    with pytest.raises(lf.errors.ResumeStateError, match="num_workers=2"):
        lf.Loader(uneven, batch_size=64, features=["x"], columns=["id"], seed=2).load_state_dict(state)


@pytest.mark.parametrize("workers", [2, 3])
def test_a_dataset_with_workers_gives_their_stream_in_process(uneven: lf.Table, workers: int) -> None:
    reference = _two_epochs(uneven, workers)
    per_epoch = len(reference) // 2
    ds = _ids_dataset(uneven, workers)
    assert len(ds) == per_epoch
    assert _stream(ds) == reference[:per_epoch]
    assert _stream(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)) == reference[per_epoch:]
    # a break in-process, and a resume through the workers from there
    ds = _ids_dataset(uneven, workers)
    it = iter(ds)
    head = [next(it)["id"].tolist() for _ in range(5)]
    state = ds.state_dict()
    del it
    resumed = _ids_dataset(uneven, workers).dataloader()
    resumed.load_state_dict(state)
    assert head + _stream(resumed) + _stream(resumed) == reference


@pytest.mark.parametrize("workers", [0, 2])
def test_set_epoch_keeps_a_loaded_position_of_that_epoch(uneven: lf.Table, workers: int) -> None:
    reference = _two_epochs(uneven, workers)
    per_epoch = len(reference) // 2
    dl = _ids_dataset(uneven, workers).dataloader()
    _ = _stream(dl)
    it = iter(dl)
    _ = [next(it) for _ in range(3)]  # into epoch 1
    state = dl.state_dict()
    del it
    ds = _ids_dataset(uneven, workers)
    dl = ds.dataloader()
    dl.load_state_dict(state)
    ds.set_epoch(1)  # the usual call at the top of each epoch
    ds.set_epoch(1)
    assert _stream(dl) == reference[per_epoch + 3 :]
    ds.set_epoch(1)  # the resumed epoch was read: epoch 1 again, from its start
    assert _stream(dl) == reference[per_epoch:]
    ds.load_state_dict(state)
    ds.set_epoch(0)  # another epoch: the loaded position is dropped
    assert _stream(dl) == reference[:per_epoch]


def _rows(batches: object) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(b["features"].numpy().copy(), b["label"].numpy().copy()) for b in batches]  # type: ignore[attr-defined]


def _same(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_a_cache_on_the_device_gives_the_same_batches_and_resumes_exactly(uneven: lf.Table, cache: str) -> None:
    def loader() -> lf.Loader:
        return lf.Loader(uneven, batch_size=64, features=["x"], label="id", seed=5, cache=cache)  # type: ignore[arg-type]

    host, device = loader(), loader()
    for epoch in range(2):  # the second epoch is a new permutation of the cache, on both
        _same(_rows(host.torch()), _rows(device.torch(device="cpu", cache_on_device=True)))
        assert host.epoch == device.epoch == epoch + 1
    copy = device.device_caches["cpu"]
    assert copy["features"].shape == (len(copy["features"]), 1)
    list(device.torch(device="cpu", cache_on_device=True))
    assert device.device_caches["cpu"] is copy  # made once per loader and device, reused by every epoch
    # stop after 5 batches of epoch 2, resume in a fresh loader: the rest of the epoch, bit for bit
    first = loader()
    first.set_epoch(2)
    taken = []
    for i, b in enumerate(first.torch(device="cpu", cache_on_device=True)):
        taken.append(b)
        if i == 4:
            break
    state = first.state_dict()
    assert state["batch"] == 5
    resumed = loader()
    resumed.load_state_dict(state)
    reference = loader()
    reference.set_epoch(2)
    _same(_rows(resumed.torch(device="cpu", cache_on_device=True)), _rows(reference.torch())[5:])


@pytest.mark.parametrize("gather_batches", [1, 3, 1000])
def test_batches_sliced_from_a_device_gather_are_the_hosts_and_independent(
    uneven: lf.Table, monkeypatch: pytest.MonkeyPatch, gather_batches: int
) -> None:
    """A gather of several batches at once, sliced per batch: the host's batches, each its own memory."""
    from lakefeed.frameworks import torch as adapter

    # rows of 8 bytes (x as float32, id as int32 after the cast): a gather of `gather_batches` batches
    monkeypatch.setattr(adapter, "GATHER_BYTES", gather_batches * 64 * 8)

    def loader() -> lf.Loader:
        return lf.Loader(
            uneven, batch_size=64, features=["x"], label="id", seed=3, cache="memory", dtypes={"label": "int32"}
        )

    host, device = loader(), loader()
    reference = _rows(host.torch())
    got = []
    kept = []  # every batch kept: its gather stays alive, so distinct gathers have distinct storage
    for b in device.torch(device="cpu", cache_on_device=True):
        got.append((b["features"].numpy().copy(), b["label"].numpy().copy()))
        kept.append(b["features"])
        b["features"].fill_(-1.0)  # a consumer changing its batch in place changes no later batch
        b["label"].zero_()
    _same(got, reference)
    assert device.stats()["batches"] == len(reference)
    # batch k shares its gather with the batches after it, up to `gather_batches` of them
    assert len({t.untyped_storage().data_ptr() for t in kept}) == -(-len(reference) // gather_batches)
    del kept
    # resumed in the middle of a gather: the rest of the epoch, bit for bit
    first = loader()
    for i, _ in enumerate(first.torch(device="cpu", cache_on_device=True)):
        if i == 4:
            break
    resumed = loader()
    resumed.load_state_dict(first.state_dict())
    _same(_rows(resumed.torch(device="cpu", cache_on_device=True)), reference[5:])


@pytest.mark.parametrize("gather_batches", [None, 3], ids=["one-gather", "gathers-of-3"])
@pytest.mark.parametrize(
    "options",
    [{"drop_last": True}, {"sampling": "weighted"}, {"shuffle": False}, {"rank": 1, "world_size": 3}],
    ids=["drop_last", "weighted", "unshuffled", "rank-1-of-3"],
)
def test_a_cache_on_the_device_matches_the_host_with_samplers_and_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, object], gather_batches: int | None
) -> None:
    from lakefeed.frameworks import torch as adapter

    if gather_batches is not None:  # rows of 12 bytes (x as float32, id as int64)
        monkeypatch.setattr(adapter, "GATHER_BYTES", gather_batches * 16 * 12)
    n = 203
    data = pa.table(
        {
            "x": [float(i) for i in range(n)],
            "w": [1.0 + (i % 5) for i in range(n)],
            "name": [f"n{i}" for i in range(n)],
            "id": list(range(n)),
        }
    )
    table = lf.Warehouse(tmp_path).create_table("t.dev", data)
    kwargs = dict(options)
    if kwargs.pop("sampling", None):
        kwargs["sampling"] = lf.samplers.Weighted("w")

    def loader() -> lf.Loader:
        return lf.Loader(
            table, batch_size=16, features=["x"], label="id", columns=["name"], seed=2, cache="memory", **kwargs
        )

    def batches(on_device: bool) -> list[tuple[list[float], list[int], list[str]]]:
        one = loader()
        out = []
        for _ in range(2):  # two epochs: the second from the order drawn ahead
            for b in one.torch(device="cpu", cache_on_device=on_device):
                out.append((b["features"][:, 0].tolist(), b["label"].tolist(), list(b["name"])))
        return out

    host, device = batches(False), batches(True)
    assert host == device
    assert len(host) == 2 * len(loader())


def test_a_cache_on_the_device_needs_a_cache(uneven: lf.Table) -> None:
    loader = lf.Loader(uneven, batch_size=64, features=["x"], label="id")
    with pytest.raises(lf.errors.ConfigError, match="cache='memory'"):
        loader.torch(device="cpu", cache_on_device=True)
    with pytest.raises(lf.errors.ConfigError, match="cache='memory'"):
        list(loader.iterate(lambda b: b, rows_only=True))


def test_list_columns_come_from_a_device_cache_unchanged(tmp_path: Path) -> None:
    data = pa.table({"x": [float(i) for i in range(50)], "tags": [list(range(i % 4)) for i in range(50)]})
    table = lf.Warehouse(tmp_path).create_table("t.tags", data)

    def batches(on_device: bool) -> list[tuple[list[float], list[int], list[int]]]:
        loader = lf.Loader(table, batch_size=8, features=["x"], columns=["tags"], seed=1, cache="memory")
        out = []
        for b in loader.torch(device="cpu", cache_on_device=on_device):
            values, starts = b["tags"]
            out.append((b["features"][:, 0].tolist(), values.tolist(), starts.tolist()))
        return out

    assert batches(True) == batches(False)


@pytest.fixture(scope="module")
def even(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    """1,000 rows (``id`` 0..999, ``x`` = ``id``) in three files of uneven sizes: 2 workers need no padding."""
    table = lf.Warehouse(tmp_path_factory.mktemp("even")).create_table(
        "t.even", pa.table({"id": np.arange(0, 300, dtype=np.int64), "x": np.arange(0, 300, dtype=np.float32)})
    )
    for lo, hi in [(300, 337), (337, 1000)]:
        table.append(pa.table({"id": np.arange(lo, hi, dtype=np.int64), "x": np.arange(lo, hi, dtype=np.float32)}))
    return table


def test_spawned_workers_give_the_forked_stream_and_resume_it(even: lf.Table) -> None:
    def dataset() -> lf.frameworks.torch.TorchDataset:
        return lf.torch_dataset(even, batch_size=64, features=["x"], columns=["id"], num_workers=2, seed=4)

    forked = dataset().dataloader(multiprocessing_context="fork")
    reference = _stream(forked) + _stream(forked)  # epochs 0 and 1
    per_epoch = len(reference) // 2
    forked = dataset().dataloader(multiprocessing_context="fork")
    it = iter(forked)
    _ = [next(it) for _ in range(5)]
    forked_state = forked.state_dict()
    del it
    # persistent spawned workers: the position in shared memory moves them on to epoch 1
    spawned = dataset().dataloader(multiprocessing_context="spawn", persistent_workers=True)
    it = iter(spawned)
    head = [next(it)["id"].tolist() for _ in range(5)]
    state = spawned.state_dict()
    rest = _stream(it)
    del it
    assert state == forked_state
    assert head + rest + _stream(spawned) == reference
    for epoch in (reference[:per_epoch], reference[per_epoch:]):
        assert sorted(i for batch in epoch for i in batch) == list(range(1000))  # every row exactly once
    resumed = dataset().dataloader(multiprocessing_context="spawn", persistent_workers=True)
    resumed.load_state_dict(state)
    assert _stream(resumed) + _stream(resumed) == reference[5:]


def _negate(block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A transform at module level: a spawned worker imports it."""
    return {**block, "features": -block["features"]}


def _batches(dataset: object) -> list[dict[str, np.ndarray]]:
    return [{k: v.numpy() for k, v in b.items()} for b in dataset]  # type: ignore[attr-defined]


def _assert_same_batches(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


@pytest.mark.parametrize("kind", ["iceberg_pk", pytest.param("delta_pk", marks=pytest.mark.delta), "parquet"])
def test_a_pickled_dataset_reopens_its_table_at_its_snapshot(table_factory: object, kind: str) -> None:
    import pickle

    import pyarrow.parquet as pq

    table = table_factory(kind)  # type: ignore[operator]
    ds = lf.torch_dataset(table, batch_size=32, features=["f"], columns=["id"], num_workers=2, fill_null=0.0, seed=1)
    blob = pickle.dumps(ds)  # what a spawned worker gets (at epoch 0)
    expected = _batches(ds)
    again = pickle.loads(blob)
    assert again.loader is not ds.loader
    _assert_same_batches(_batches(again), expected)  # iterated here: the workers' stream, in turn
    extra = DATA.slice(0, 5).set_column(0, DATA.schema.field("id"), pa.array(range(50_000, 50_005), pa.int64()))
    if kind == "parquet":  # no snapshot to pin: a worker that finds other files refuses to read them
        pq.write_table(extra.drop_columns(["cat"]), Path(table.location, "cat=red", "part-9.parquet"))
        with pytest.raises(lf.errors.ResumeStateError, match="changed on storage"):
            pickle.loads(blob).loader  # noqa: B018 - the loader is rebuilt on first use
    else:  # a new snapshot: the copy still reads the one the dataset was made over
        table.append(extra)
        _assert_same_batches(_batches(pickle.loads(blob)), expected)


def test_a_pickled_dataset_carries_every_loader_argument(uneven: lf.Table, tmp_path: Path) -> None:
    """A new ``Loader`` argument the recipe forgot would give spawned workers another loader."""
    import inspect

    from lakefeed.frameworks.torch import _loader_arguments

    # between them, every argument away from its default, so that a value lost on the way shows
    common: dict[str, Any] = {"features": ["x"], "label": "id", "columns": ["id"], "seed": 7}
    loaders = [
        lf.Loader(
            uneven, batch_size=8, shuffle=False, shuffle_buffer=64, drop_last=True, rank=1, world_size=2,
            uneven="drop", transform=_negate, cache="disk", cache_dir=tmp_path, num_threads=1, prefetch=1,
            dtype="float64", fill_null=0.5, dtypes={"label": "float32"}, target_bytes=1 << 20,
            memory_budget=64 << 20, **common,
        ),
        lf.Loader(uneven, sampling=lf.samplers.Weighted("x"), **common),
    ]  # fmt: skip
    defaults = _loader_arguments(lf.Loader(uneven, features=["id"]))
    through_the_scan = {"source", "filter", "snapshot"}  # the recipe's table, filter and snapshot id
    assert set(defaults) | through_the_scan == set(inspect.signature(lf.Loader.__init__).parameters) - {"self"}
    changed = set()
    for loader in loaders:
        carried = _loader_arguments(loader)
        changed |= {k for k in carried if carried[k] != defaults[k]}
        rebuilt = lf.Loader(uneven, **carried)
        assert _loader_arguments(rebuilt) == carried
        assert rebuilt._fingerprint() == loader._fingerprint()
    assert changed == set(defaults)


def test_a_pickled_dataset_keeps_its_snapshot_filter_and_transform(tmp_path: Path) -> None:
    import pickle

    import lakefeed.transforms as lt

    def rows(lo: int, hi: int) -> pa.Table:
        return pa.table({"id": np.arange(lo, hi, dtype=np.int64), "x": np.arange(lo, hi, dtype=np.float64)})

    table = lf.Warehouse(tmp_path).create_table("t.snap", rows(0, 300))
    table.append(rows(300, 500))
    pinned = table.snapshot_id
    table.append(rows(500, 900))
    scaler = lt.Pipeline([lt.StandardScaler(columns=["x"])]).fit(table)
    where = (lf.col("id") >= 30) & (lf.col("id") < 470)
    common: dict[str, object] = {"batch_size": 40, "features": ["x"], "columns": ["id"], "num_workers": 2, "seed": 3}
    made = [
        lf.torch_dataset(table, filter=where, snapshot=pinned, transform=_negate, **common),  # type: ignore[arg-type]
        lf.torch_dataset(table, filter=where, transform=scaler, cache="memory", **common),  # type: ignore[arg-type]
        lf.torch_dataset(table.scan(columns=["id", "x"], filter=where, snapshot=pinned), **common),  # type: ignore[arg-type]
    ]
    pickled = [pickle.dumps(ds) for ds in made]  # at epoch 0
    expected = [_batches(ds) for ds in made]
    table.append(rows(900, 1000))  # the table moves on: the copies still read what the datasets were made over
    for blob, batches in zip(pickled, expected, strict=True):
        _assert_same_batches(_batches(pickle.loads(blob)), batches)
    ids = {i for batch in expected[0] for i in batch["id"].tolist()}
    assert ids == set(range(30, 470))
    assert all((batch["features"] <= 0).all() for batch in expected[0])


def test_a_pickled_dataset_keeps_its_schema_and_stratified_sampling(tmp_path: Path) -> None:
    import pickle

    from pyiceberg.types import LongType

    from lakefeed.samplers import Stratified

    data = pa.table(
        {"id": np.arange(400, dtype=np.int64), "x": np.arange(400, dtype=np.float32), "y": np.arange(400) % 4}
    )
    table = lf.Warehouse(tmp_path).create_table("t.evolve", data)
    common: dict[str, object] = {"batch_size": 32, "features": ["x"], "columns": ["id"], "num_workers": 2}
    made = lf.torch_dataset(table, **common)  # type: ignore[arg-type]
    with table.pyiceberg_table.update_schema() as update:  # a schema change makes no snapshot
        update.add_column("z", LongType())
    table.refresh()
    made_after = lf.torch_dataset(table.scan(columns=["id", "x"], snapshot=table.snapshot_id), **common)  # type: ignore[arg-type]
    stratified = lf.torch_dataset(table, sampling=Stratified("y", shares={0: 1, 1: 3}), **common)  # type: ignore[arg-type]
    for ds in (made, made_after, stratified):
        copy = pickle.loads(pickle.dumps(ds))  # both at the same position
        _assert_same_batches(_batches(copy), _batches(ds))


class _InMemoryPart(TablePart):
    def __init__(self, data: pa.Table) -> None:
        self.data, self.num_rows, self.estimated_bytes, self.path = data, data.num_rows, data.nbytes, "memory"

    def read(self, plan: ReadPlan) -> object:  # type: ignore[override]
        for batch in self.data.to_batches():
            yield plan.finish(batch, filtered=False)


class _InMemoryTable(lf.Table):
    """A table held in this process only: a spawned worker cannot open it again."""

    format = "parquet"

    def __init__(self, data: pa.Table) -> None:
        super().__init__("memory.t")
        self.data = data

    @property
    def schema(self) -> pa.Schema:
        return self.data.schema

    @property
    def location(self) -> str:
        return "memory"

    def _schema_at(self, snapshot_id: int | None) -> pa.Schema:
        return self.data.schema

    def _parts_planner(self, snapshot_id: int | None, *, current_schema: bool = True) -> object:  # type: ignore[override]
        return lambda plan: [_InMemoryPart(self.data)]


def test_what_a_spawned_worker_cannot_rebuild_is_refused_when_pickled(uneven: lf.Table) -> None:
    import pickle

    from lakefeed.errors import UnsupportedOperationError

    def local(block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return block

    for transform in (lambda block: block, local):
        ds = lf.torch_dataset(uneven, batch_size=64, features=["x"], num_workers=1, transform=transform)
        assert len(list(ds)) == len(ds)  # in this process (or forked workers) it works
        with pytest.raises(UnsupportedOperationError, match=r"transform .*cannot be pickled.*at module level"):
            pickle.dumps(ds)
    memory = _InMemoryTable(pa.table({"id": np.arange(10, dtype=np.int64), "x": np.arange(10, dtype=np.float32)}))
    ds = lf.torch_dataset(memory, batch_size=4, features=["x"], num_workers=1)
    with pytest.raises(UnsupportedOperationError, match=r"'memory.t' is a _InMemoryTable.*pass that table or its URI"):
        pickle.dumps(ds)
    # refused in this process, before a worker starts
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1, multiprocessing_context="spawn")
    with pytest.raises(UnsupportedOperationError, match="cannot reopen in another process"):
        next(iter(loader))
