"""PyTorch: tensors from the loader, and a model that learns from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf

torch = pytest.importorskip("torch", reason="torch is installed in the main environment")
pytestmark = pytest.mark.torch


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


def test_a_model_learns_from_the_loader(regression: lf.Table) -> None:
    torch.manual_seed(0)
    loader = lf.Loader(regression, batch_size=256, features=[f"f{j}" for j in range(8)], label="y", seed=0)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    per_batch: list[float] = []
    for _ in range(2):
        for batch in loader.torch():
            prediction = model(batch["features"]).squeeze(1)
            loss = torch.nn.functional.mse_loss(prediction, batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            per_batch.append(float(loss.detach()))
    first, last = np.mean(per_batch[:10]), np.mean(per_batch[-10:])
    assert last < 0.01 * first, (first, last)
    assert last < 0.01  # the noise floor is 0.05**2
