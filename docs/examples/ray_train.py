"""Train a torch model with Ray Train on two workers, each reading its shard of a lakefeed table.

    python docs/examples/ray_train.py [--fail-at 0:10]

Every worker builds its loader with :func:`lakefeed.ray.train_loader` (rank and world size from
the Ray Train context: equal batches per worker, every row once per epoch over all workers) and
checkpoints its position with :func:`lakefeed.ray.save_loader_state` next to the model's state.
``--fail-at EPOCH:BATCH`` makes the workers crash once right after the checkpoint at that batch:
Ray restarts them from the checkpoint and the loaders resume at the next batch, exactly.

Runs on one machine (``ray.init()``) or, unchanged, on a cluster (``ray.init(address=...)``)
when the warehouse is on storage every node can reach (see docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import lakefeed as lf

FEATURES = ["x0", "x1", "x2", "x3"]


def make_table(home: Path, rows: int = 1000) -> str:
    """A regression table: y = x . w + noise, with an ``id`` per row; returns its URI."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, len(FEATURES))).astype("float32")
    y = x @ np.array([0.5, -1.0, 2.0, 0.25], dtype="float32") + 0.01 * rng.standard_normal(rows).astype("float32")
    columns: dict[str, Any] = {"id": np.arange(rows), "y": y, **{f: x[:, j] for j, f in enumerate(FEATURES)}}
    lf.Warehouse(home).create_table("demo.regression", pa.table(columns))
    return f"iceberg://{home}/demo.regression"


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One worker: its loader shard, a DDP model, checkpoints with the loader's position."""
    import ray.train
    import ray.train.torch
    import torch

    import lakefeed.ray

    rank = ray.train.get_context().get_world_rank()
    loader = lakefeed.ray.train_loader(
        config["table"],
        snapshot=config["snapshot"],  # resolved once by the driver: every rank reads the same rows
        batch_size=config["batch_size"],
        features=FEATURES,
        label="y",
        columns=["id"],
        seed=7,
    )
    model = torch.nn.Linear(len(FEATURES), 1)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # restored after a failure: the model's state is beside the loader's
        with checkpoint.as_directory() as folder:
            model.load_state_dict(torch.load(Path(folder) / "model.pt"))
    model = ray.train.torch.prepare_model(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    fail_at = config.get("fail_at")
    log = Path(config["log"]) / f"rank{rank}.jsonl" if config.get("log") else None
    for epoch in range(loader.epoch, config["epochs"]):
        losses = []
        for i, batch in enumerate(loader.torch(), start=loader.position + 1):
            loss = torch.nn.functional.mse_loss(model(batch["features"]).squeeze(1), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
            if log is not None:
                with log.open("a") as f:
                    f.write(json.dumps({"epoch": epoch, "batch": i, "ids": batch["id"].tolist()}) + "\n")
            if fail_at is not None and (epoch, i) == tuple(fail_at) and checkpoint is None:
                report(loader, model, rank, {"epoch": epoch, "batch": i, "loss": float(np.mean(losses))})
                msg = f"simulated failure after the checkpoint at epoch {epoch}, batch {i}"
                raise RuntimeError(msg)
        # the end of an epoch: a checkpoint resumes at the start of the next one
        report(loader, model, rank, {"epoch": epoch, "loss": float(np.mean(losses)) if losses else None})


def report(loader: lf.Loader, model: Any, rank: int, metrics: dict[str, Any]) -> None:
    """Report ``metrics`` with a checkpoint: every worker's loader position, rank 0's model."""
    import ray.train
    import torch

    import lakefeed.ray

    with tempfile.TemporaryDirectory() as folder:
        lakefeed.ray.save_loader_state(loader, folder)
        if rank == 0:
            torch.save(getattr(model, "module", model).state_dict(), Path(folder) / "model.pt")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def fit(table: str, *, workers: int = 2, epochs: int = 2, batch_size: int = 32, storage: str, **config: Any) -> Any:
    """Run :func:`train_loop_per_worker` under a ``TorchTrainer``; one restart allowed."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "table": table,
            "snapshot": lf.open_table(table).snapshot_id,
            "epochs": epochs,
            "batch_size": batch_size,
            **config,
        },
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=False),
        run_config=RunConfig(
            storage_path=storage, name="lakefeed-ray-train", failure_config=FailureConfig(max_failures=1)
        ),
    )
    return trainer.fit()


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fail-at", help="EPOCH:BATCH: crash once after the checkpoint there")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lakefeed-ray-train-"))
    table = make_table(work / "home")
    fail_at = [int(v) for v in args.fail_at.split(":")] if args.fail_at else None
    ray.init()  # or ray.init(address="auto") on a cluster
    result = fit(table, storage=str(work / "ray"), fail_at=fail_at)
    print(f"final metrics: {result.metrics}")


if __name__ == "__main__":
    main()
