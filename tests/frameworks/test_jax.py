"""JAX: jax arrays from the loader, and a jitted training step that learns from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import lakefeed as lf

jax = pytest.importorskip("jax", reason="jax is installed in the main environment")
pytestmark = pytest.mark.jax


@pytest.fixture
def regression(tmp_path: Path) -> lf.Table:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8_000, 4)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    return lf.Warehouse(tmp_path).create_table("j.reg", pa.table({**{f"f{j}": x[:, j] for j in range(4)}, "y": y}))


def test_batches_are_jax_arrays(regression: lf.Table) -> None:
    loader = lf.Loader(regression, batch_size=512, features=[f"f{j}" for j in range(4)], label="y")
    batches = list(loader.jax())
    assert len(batches) == len(loader) == 16
    assert isinstance(batches[0]["features"], jax.Array)
    assert batches[0]["features"].shape == (512, 4)
    rows = sum(b["features"].shape[0] for b in batches)
    assert rows == 8_000


def test_a_jitted_step_learns(regression: lf.Table) -> None:
    import jax.numpy as jnp

    loader = lf.Loader(regression, batch_size=256, features=[f"f{j}" for j in range(4)], label="y", seed=0)

    @jax.jit
    def step(w: jax.Array, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        def loss(w: jax.Array) -> jax.Array:
            return jnp.mean((x @ w - y) ** 2)

        value, grad = jax.value_and_grad(loss)(w)
        return w - 0.1 * grad, value

    w = jnp.zeros(4)
    losses = []
    for _ in range(2):
        for batch in loader.jax():
            w, value = step(w, batch["features"], batch["label"])
            losses.append(float(value))
    assert losses[-1] < 0.001 * losses[0]
    np.testing.assert_allclose(np.asarray(w), [1.0, -2.0, 0.5, 3.0], atol=1e-2)


def test_a_state_taken_while_iterating_jax_batches_resumes_exactly(regression: lf.Table) -> None:
    def loader() -> lf.Loader:
        return lf.Loader(regression, batch_size=500, features=["f0"], label="y", seed=4, shuffle_buffer=1_000)

    reference = [b["label"] for b in loader()]
    run = loader()
    it = iter(run.jax())
    head = [np.asarray(next(it)["label"]) for _ in range(3)]
    state = run.state_dict()
    assert state["batch"] == 3  # the batch being put on the device ahead is not counted
    again = loader()
    again.load_state_dict(state)
    rest = [np.asarray(b["label"]) for b in again.jax()]
    assert len(head + rest) == len(reference)
    for got, expected in zip(head + rest, reference, strict=True):
        np.testing.assert_array_equal(got, expected)
