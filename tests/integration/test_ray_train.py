"""Ray Train: TorchTrainer on 2 local CPU workers reading lakefeed shards; a crash and an exact resume."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import lakefeed as lf
from lakefeed.errors import ConfigError, ResumeStateError

pytestmark = [pytest.mark.ray, pytest.mark.torch, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")]

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "ray_train.py"
ROWS, BATCH, EPOCHS = 1000, 32, 2


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="Ray is installed with lakefeed[ray]")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 << 20, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ray_train_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log(folder: Path, rank: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"rank{rank}.jsonl").read_text().splitlines()]


def test_two_workers_crash_and_resume_exactly(ray_local: Any, example: ModuleType, tmp_path: Path) -> None:
    table = example.make_table(tmp_path / "home", rows=ROWS)
    log = tmp_path / "log"
    log.mkdir()
    result = example.fit(
        table, epochs=EPOCHS, batch_size=BATCH, storage=str(tmp_path / "ray"), log=str(log), fail_at=[0, 10]
    )
    assert result.error is None
    per_rank = ROWS // 2
    batches = -(-per_rank // BATCH)
    logs = [_log(log, rank) for rank in (0, 1)]
    for entries in logs:
        # batches 1..10 of epoch 0, the crash, then 11..end of epoch 0 and all of epoch 1: no batch twice
        assert [(e["epoch"], e["batch"]) for e in entries] == [(0, b) for b in range(1, batches + 1)] + [
            (1, b) for b in range(1, batches + 1)
        ]
        assert [len(e["ids"]) for e in entries if e["epoch"] == 0] == [BATCH] * (batches - 1) + [
            per_rank % BATCH or BATCH
        ]
    for epoch in range(EPOCHS):
        seen = Counter(i for entries in logs for e in entries if e["epoch"] == epoch for i in e["ids"])
        assert sorted(seen) == list(range(ROWS))  # every row, across the two workers
        assert set(seen.values()) == {1}  # exactly once
        shards = [{i for e in entries if e["epoch"] == epoch for i in e["ids"]} for entries in logs]
        assert not shards[0] & shards[1]
    # the resumed epoch 0 is the same order an uninterrupted run reads
    for rank, entries in enumerate(logs):
        plain = lf.Loader(
            table,
            batch_size=BATCH,
            features=example.FEATURES,
            label="y",
            columns=["id"],
            seed=7,
            rank=rank,
            world_size=2,
        )
        assert [e["ids"] for e in entries if e["epoch"] == 0] == [b["id"].tolist() for b in plain]
    assert result.metrics["epoch"] == EPOCHS - 1
    assert result.metrics["loss"] < 0.5  # it learned (the target's variance is ~5.3)


def test_train_loader_outside_a_worker_is_a_clear_error(ray_local: Any, tmp_path: Path) -> None:
    import pyarrow as pa

    import lakefeed.ray

    t = lf.Warehouse(tmp_path).create_table("d.t", pa.table({"x": [1.0, 2.0]}))
    with pytest.raises(ConfigError, match="inside a Ray Train worker"):
        lakefeed.ray.train_loader(t, batch_size=1, features=["x"])
    with pytest.raises(ConfigError, match="from the Ray Train context"):
        lakefeed.ray.train_loader(t, batch_size=1, features=["x"], rank=0, world_size=1)


def test_loader_state_from_another_world_size_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa

    import lakefeed.ray

    t = lf.Warehouse(tmp_path).create_table("d.t", pa.table({"x": [float(i) for i in range(8)]}))
    first = lf.Loader(t, batch_size=1, features=["x"], rank=0, world_size=2)
    iterator = iter(first)
    next(iterator)
    (tmp_path / "ckpt").mkdir()
    lakefeed.ray.save_loader_state(first, tmp_path / "ckpt")
    same = lf.Loader(t, batch_size=1, features=["x"], rank=0, world_size=2)
    lakefeed.ray.load_loader_state(same, tmp_path / "ckpt")
    assert same.position == 1
    other_rank = lf.Loader(t, batch_size=1, features=["x"], rank=2, world_size=4)
    with pytest.raises(ResumeStateError, match="no loader state for rank 2"):
        lakefeed.ray.load_loader_state(other_rank, tmp_path / "ckpt")
    other_world = lf.Loader(t, batch_size=1, features=["x"], rank=0, world_size=4)
    with pytest.raises(ResumeStateError):
        lakefeed.ray.load_loader_state(other_world, tmp_path / "ckpt")


def test_train_loader_reads_the_snapshot_it_is_given_and_resumes_on_the_saved_one(
    ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import pyarrow as pa
    import ray.train

    from lakefeed.integrations import ray_train

    first = pa.table({"x": np.arange(40, dtype=np.float64), "note": ["n"] * 40})
    table = lf.Warehouse(tmp_path / "home").create_table("t.s", first)
    uri = f"iceberg://{tmp_path / 'home'}/t.s"
    pinned = table.snapshot_id
    table.append(pa.table({"x": np.arange(40, 60, dtype=np.float64), "note": ["n"] * 20}))  # after the driver

    class Context:
        def get_world_rank(self) -> int:
            return 1

        def get_world_size(self) -> int:
            return 2

    checkpoint: list[Any] = [None]
    monkeypatch.setattr(ray.train, "get_context", lambda: Context())
    monkeypatch.setattr(ray.train, "get_checkpoint", lambda: checkpoint[0])
    loader = ray_train.train_loader(uri, snapshot=pinned, batch_size=4, features=["x"], filter=lf.col("x") >= 0)
    assert loader.scan.snapshot_id == pinned
    assert loader.scan.columns == ["x"]  # pinned, and still reading only what the batches need
    assert loader.rows_per_epoch() == 20  # half of the 40 rows the driver saw, not of 60
    it = iter(loader)
    head = [next(it)["features"][:, 0].tolist() for _ in range(2)]
    folder = tmp_path / "ckpt"
    folder.mkdir()
    ray_train.save_loader_state(loader, folder)
    rest = [b["features"][:, 0].tolist() for b in it]
    table.append(pa.table({"x": np.arange(60, 80, dtype=np.float64), "note": ["n"] * 20}))  # before the restart
    checkpoint[0] = ray.train.Checkpoint.from_directory(str(folder))
    resumed = ray_train.train_loader(uri, batch_size=4, features=["x"], filter=lf.col("x") >= 0)
    assert resumed.scan.snapshot_id == pinned  # the checkpoint's snapshot, not the latest
    with pytest.raises(ResumeStateError, match=f"read snapshot {pinned}, but snapshot="):
        ray_train.train_loader(uri, snapshot=table.refresh().snapshot_id, batch_size=4, features=["x"])
    assert [b["features"][:, 0].tolist() for b in resumed] == rest
    assert len(head) == 2
