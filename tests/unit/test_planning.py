"""Task planning by decoded size: balanced tasks, accurate estimates, an exact partition of the scan."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lakefeed as lf
from lakefeed.errors import ConfigError
from lakefeed.tables.planning import ParquetFileInfo, balanced_groups

ROWS = 60_000


def _mixed_table(home: Path) -> lf.Table:
    """One highly compressible string file and one random-float file in one Iceberg table."""
    rng = random.Random(1)
    words = ["lorem ipsum dolor sit amet " * 4, "consectetur adipiscing elit " * 4, "sed do eiusmod tempor " * 4]
    compressible = pa.table({"s": [words[i % 3] for i in range(ROWS)], "x": pa.array([0.0] * ROWS)})
    noisy = pa.table(
        {
            "s": ["".join(rng.choices(string.ascii_letters, k=2)) for _ in range(ROWS)],
            "x": pa.array([rng.random() for _ in range(ROWS)]),
        }
    )
    wh = lf.Warehouse(home)
    t = wh.create_table("plan.mixed", compressible, properties={"write.parquet.row-group-limit": "4096"})
    t.append(noisy)
    return t


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> lf.Table:
    return _mixed_table(tmp_path_factory.mktemp("mixed"))


def test_premise_files_compress_very_differently(mixed: lf.Table) -> None:
    from pyiceberg.table import Table as PyIcebergTable

    ice: PyIcebergTable = mixed.pyiceberg_table  # type: ignore[attr-defined]
    sizes = sorted(t.file.file_size_in_bytes for t in ice.scan().plan_files())
    decoded = sorted(p.estimated_bytes for p in _file_totals(mixed))
    assert sizes[1] / sizes[0] > 5, "the random file must be much larger on disk"
    assert decoded[1] / decoded[0] > 5, "the string file must be much larger in memory"


def _file_totals(table: lf.Table) -> list[lf.ScanTask]:
    parts = table.scan().parts()
    by_file: dict[str, list[object]] = {}
    for p in parts:
        by_file.setdefault(p.path, []).append(p)
    scan = table.scan()
    return [lf.ScanTask(ps, scan.plan) for ps in by_file.values()]  # type: ignore[arg-type]


@pytest.mark.parametrize("target", [512 << 10, 1 << 20, 3 << 20])
def test_tasks_are_balanced_by_memory(mixed: lf.Table, target: int) -> None:
    tasks = mixed.scan().tasks(target_bytes=target)
    sizes = [t.estimated_bytes for t in tasks]
    assert len(tasks) > 2
    body = sizes[:-1]
    assert max(body) <= 1.5 * min(body), sizes
    assert max(sizes) <= 1.5 * target


@pytest.mark.parametrize("columns", [None, ["s"], ["x"]])
def test_estimates_within_25_percent_of_real_size(mixed: lf.Table, columns: list[str] | None) -> None:
    for task in mixed.scan(columns=columns).tasks(target_bytes=1 << 20):
        real = sum(b.nbytes for b in task.read())
        assert abs(task.estimated_bytes - real) <= 0.25 * real, (task.estimated_bytes, real)


def test_tasks_cover_the_scan_exactly(mixed: lf.Table) -> None:
    scan = mixed.scan(filter=lf.col("x") < 0.5)
    rows = sum(b.num_rows for t in scan.tasks(target_bytes=300 << 10) for b in t.read())
    assert rows == scan.count() == scan.to_arrow().num_rows
    total = sum(t.num_rows for t in mixed.scan().tasks(target_bytes=300 << 10))
    assert total == 2 * ROWS


def test_a_big_file_is_split_by_row_group(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"v": pa.array(range(100_000), pa.int64())}), path, row_group_size=10_000)
    t = lf.open_table(path)
    tasks = t.scan().tasks(target_bytes=200_000)
    assert len(tasks) == 5
    assert [task.parts[0].row_groups for task in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]  # type: ignore[attr-defined]
    assert all(task.estimated_bytes == 160_000 for task in tasks)
    assert sum(task.num_rows for task in tasks) == 100_000


def test_estimates_count_validity_bitmaps_and_booleans(tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    table = pa.table({"a": pa.array([1, None] * 5000, pa.int32()), "b": pa.array([True] * 10_000)})
    pq.write_table(table, path)
    info = ParquetFileInfo.load(str(path), pa.fs.LocalFileSystem())
    assert info.row_group_bytes(["a"]) == [40_000 + 1250] == [pq.read_table(path, columns=["a"]).nbytes]
    assert info.row_group_bytes(["b"]) == [1250] == [pq.read_table(path, columns=["b"]).nbytes]


def test_target_bytes_must_be_positive(mixed: lf.Table) -> None:
    with pytest.raises(ConfigError, match="positive"):
        mixed.scan().tasks(target_bytes=0)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=1000), max_size=60),
    target=st.integers(min_value=1, max_value=5000),
)
def test_balanced_groups_partition_in_order(sizes: list[int], target: int) -> None:
    items = list(enumerate(sizes))
    groups = balanced_groups(items, size=lambda it: it[1], target=target)
    assert [it for g in groups for it in g] == items
    assert all(groups), "no empty group"
    if not items:
        return
    total = sum(sizes)
    biggest = max(sizes)
    share = total / len(groups)
    for g in groups:
        # greedy groups stay within the target; even cuts land at the item edge nearest each
        # share boundary, so a group is off its share by at most two items
        assert len(g) == 1 or sum(s for _, s in g) <= max(target, share + 2 * biggest)
    assert len(groups) <= max(1, len(items))
    if biggest <= target:
        assert len(groups) <= max(1, 2 * -(-total // target))


@pytest.mark.parametrize(("prefetch", "max_bytes", "most"), [(8, 1, 1), (8, 10**12, 8), (2, 10**12, 2)])
def test_to_batches_reads_ahead_within_its_task_and_byte_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefetch: int, max_bytes: int, most: int
) -> None:
    import threading
    import time

    import lakefeed.tables.base as base

    parts = [pa.table({"i": pa.array(range(k * 1000, (k + 1) * 1000), pa.int64())}) for k in range(12)]
    wh = lf.Warehouse(tmp_path)
    table = wh.create_table("p.ahead", parts[0])
    for part in parts[1:]:
        table.append(part)
    running, peak, lock = [0], [0], threading.Lock()
    read_all = base._read_all

    def counted(task: base.ScanTask) -> list[pa.RecordBatch]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)  # long enough for the reader to start every task it is allowed to
        try:
            return read_all(task)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(base, "_read_all", counted)
    scan = table.scan()
    small = scan.tasks(8000)  # a task per file (each ~8 KB decoded)
    monkeypatch.setattr(scan, "tasks", lambda: small)
    assert len(small) == 12
    ids = [i for b in scan.to_batches(prefetch=prefetch, max_bytes=max_bytes) for i in b.column("i").to_pylist()]
    assert sorted(ids) == list(range(12_000))
    assert peak[0] == most  # a budget below one task still reads one task ahead


@pytest.mark.parametrize("bad", [{"prefetch": 0}, {"max_bytes": -1}, {"prefetch": True}])
def test_to_batches_limits_must_be_positive(mixed: lf.Table, bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="must be a positive int"):
        next(mixed.scan().to_batches(**bad))  # type: ignore[arg-type]
