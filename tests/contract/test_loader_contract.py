"""The loader on every format: every row once an epoch, order fixed by (seed, epoch), exact resume."""

from __future__ import annotations

import numpy as np
import pytest

import lakefeed as lf
from tests.conftest import DATA


def _loader(table: lf.Table, **kwargs: object) -> lf.Loader:
    options: dict[str, object] = {
        "batch_size": 16,
        "features": ["i", "f", "b"],
        "columns": ["id", "s"],
        "fill_null": 0.0,
        "seed": 4,
        "target_bytes": 2_000,
        "shuffle_buffer": 64,
    }
    options.update(kwargs)
    return lf.Loader(table, **options)  # type: ignore[arg-type]


def _ids(loader: lf.Loader) -> list[int]:
    return [int(i) for b in loader for i in b["id"]]


def test_every_row_once_and_values_intact(any_table: lf.Table) -> None:
    loader = _loader(any_table)
    expected = DATA.to_pandas().set_index("id")
    strings = dict(zip(DATA.column("id").to_pylist(), DATA.column("s").to_pylist(), strict=True))
    seen: list[int] = []
    for batch in loader:
        ids = batch["id"]
        seen.extend(ids.tolist())
        want_f = expected.loc[ids, "f"].fillna(0.0).to_numpy(np.float32)
        np.testing.assert_array_equal(batch["features"][:, 1], want_f)
        assert list(batch["s"]) == [strings[int(i)] for i in ids]
    assert sorted(seen) == DATA.column("id").to_pylist()


def test_order_is_fixed_by_seed_and_epoch(any_table: lf.Table) -> None:
    first = _loader(any_table)
    epoch0, epoch1 = _ids(first), _ids(first)
    assert _ids(_loader(any_table)) == epoch0
    assert epoch0 != epoch1
    again = _loader(any_table)
    again.set_epoch(1)
    assert _ids(again) == epoch1


@pytest.mark.parametrize("world", [1, 3])
def test_resume_after_a_batch_is_exact_on_every_rank(any_table: lf.Table, world: int) -> None:
    counts = set()
    for rank in range(world):
        full = _ids(_loader(any_table, rank=rank, world_size=world))
        counts.add(len(full))
        loader = _loader(any_table, rank=rank, world_size=world)
        it = iter(loader)
        for _ in range(5):
            next(it)
        resumed = _loader(any_table, rank=rank, world_size=world)
        resumed.load_state_dict(loader.state_dict())
        assert _ids(resumed) == full[5 * 16 :]
    assert len(counts) == 1
