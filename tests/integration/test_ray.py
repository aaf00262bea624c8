"""Ray Data over lakefeed tables, on a local Ray (2 CPUs): reads, atomic writes, block sizes, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lakefeed as lf
from lakefeed.errors import (
    CommitConflictError,
    CommitError,
    ConfigError,
    DataFileNotFoundError,
    LakefeedError,
    MissingDependencyError,
    SchemaError,
    UnsupportedOperationError,
)
from lakefeed.testing import assert_tables_equal
from tests.conftest import DATA

pytestmark = pytest.mark.ray

Factory = Callable[..., lf.Table]
MiB = 1 << 20


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """One local Ray for the module: 2 CPUs, a small object store, no dashboard."""
    ray = pytest.importorskip("ray", reason="Ray is installed with lakefeed[ray]")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * MiB, log_to_driver=False)
    with warnings.catch_warnings():  # Ray 2.60 warns about its own deprecated field while building it
        warnings.simplefilter("ignore", DeprecationWarning)
        ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    if started:
        ray.shutdown()


def _arrow(ds: Any) -> pa.Table:
    import ray

    blocks = ray.get(ds.to_arrow_refs())
    return pa.concat_tables(blocks) if blocks else pa.table({})


def _values(table: pa.Table) -> pa.Table:
    return pa.table({n: table.column(n).to_pylist() for n in table.column_names})


def _files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()}


def _orphans(table: lf.Table) -> set[str]:
    """Files under an Iceberg table's location that no snapshot refers to (metadata.json versions aside)."""
    ice = table.refresh().pyiceberg_table  # type: ignore[attr-defined]
    referenced: set[str] = set()
    for snapshot in ice.snapshots():
        referenced.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(ice.io):
            referenced.add(manifest.manifest_path)
            referenced.update(
                e.data_file.file_path for e in manifest.fetch_manifest_entry(ice.io, discard_deleted=False)
            )
    root = Path(table.location.removeprefix("file://"))
    on_disk = {f"file://{p}" for p in _files(root) if not p.endswith(".metadata.json")}
    return on_disk - referenced


# -- reading --------------------------------------------------------------------------------------


def test_read_equals_scan(ray_local: Any, any_table: lf.Table) -> None:
    ds = lf.ray.read(any_table, target_bytes=4096)
    result = _arrow(ds)
    expected = any_table.scan().to_arrow()
    assert result.schema == expected.schema
    assert_tables_equal(_values(result), _values(expected))
    assert result.num_rows == DATA.num_rows


def test_read_pushes_down_columns_filter_and_snapshot(ray_local: Any, table_factory: Factory) -> None:
    table = table_factory("iceberg")
    first = table.snapshot_id
    table.append(DATA.slice(0, 10).set_column(0, DATA.schema.field("id"), pa.array(range(1000, 1010), pa.int64())))
    expr = (lf.col("i") > 30) & (lf.col("cat") != "blue")
    ds = lf.ray.read(table, columns=["s", "id"], filter=expr, snapshot=first)
    known = ds.schema(fetch_if_missing=False)  # from the plan: nothing ran
    assert known is not None
    assert known.names == ["s", "id"]
    result = _arrow(ds)
    expected = table.scan(columns=["s", "id"], filter=expr, snapshot=first).to_arrow()
    assert result.column_names == ["s", "id"]
    assert_tables_equal(_values(result), _values(expected))
    assert pa.compute.max(result.column("id")).as_py() < 1000, "the older snapshot has no id >= 1000"
    assert lf.ray.read(table).count() == DATA.num_rows + 10
    assert len(lf.ray.read(table, target_bytes=2048).limit(7).take_all()) == 7


def test_read_pins_the_snapshot_planned_on_the_driver(ray_local: Any, table_factory: Factory) -> None:
    table = table_factory("iceberg")
    ds = lf.ray.read(table)
    table.append(DATA.slice(0, 5).set_column(0, DATA.schema.field("id"), pa.array(range(7000, 7005), pa.int64())))
    assert _arrow(ds).num_rows == DATA.num_rows  # planned before the append: reads the old snapshot


def test_one_ray_read_task_per_scan_task(ray_local: Any, any_table: lf.Table) -> None:
    from lakefeed.integrations.ray import LakefeedDatasource

    scan = any_table.scan(columns=["id", "s"])
    tasks = scan.tasks(target_bytes=2048)
    assert len(tasks) >= 1
    source = LakefeedDatasource.from_scan(scan, target_bytes=2048)
    read_tasks = source.get_read_tasks(parallelism=200)
    assert len(read_tasks) == len(tasks)
    for read_task, task in zip(read_tasks, tasks, strict=True):
        assert read_task.metadata.num_rows == (task.num_rows if task.exact_rows else None)
        assert read_task.metadata.size_bytes == task.estimated_bytes
        assert list(read_task.metadata.input_files or []) == task.files
    assert source.estimate_inmemory_data_size() == sum(t.estimated_bytes for t in tasks)
    materialized = lf.ray.read(scan, target_bytes=2048).materialize()
    assert materialized.num_blocks() >= len(tasks)
    assert all(size <= 1.5 * 2048 for size in _block_sizes(materialized))
    # with a filter the row counts are upper bounds: Ray must not trust them for count()
    filtered = LakefeedDatasource.from_scan(any_table.scan(filter=lf.col("i") > 0), target_bytes=2048)
    assert all(r.metadata.num_rows is None for r in filtered.get_read_tasks(1))


def test_scan_tasks_with_pyiceberg_parts_pickle_and_read(ray_local: Any, warehouse: lf.Warehouse) -> None:
    """Files with delete files are read by pyiceberg (deletes applied); those parts travel to workers too."""
    import pickle

    import ray

    from lakefeed.integrations.ray import LakefeedDatasource
    from lakefeed.tables.base import ScanTask
    from lakefeed.tables.iceberg import _IcebergFilePart

    table = warehouse.create_table("r.del", DATA, partition_by=["cat"])
    ice = table.pyiceberg_table
    scan = table.scan(columns=["id", "f"], filter=lf.col("f") > 0)
    assert table.snapshot_id is not None
    parts = [_IcebergFilePart(table, t, table.snapshot_id, ice.schema()) for t in ice.scan().plan_files()]
    tasks = [ScanTask([p], scan.plan) for p in parts]
    assert pickle.loads(pickle.dumps(tasks[0])).to_arrow().num_rows == tasks[0].to_arrow().num_rows
    source = LakefeedDatasource(tasks, schema=scan.schema, table=table.name, snapshot_id=table.snapshot_id)
    result = _arrow(ray.data.read_datasource(source, override_num_blocks=len(tasks)))
    assert_tables_equal(result, scan.to_arrow())


def test_read_accepts_uri_and_scan_and_rejects_bad_sources(ray_local: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    table = lf.Warehouse(home).create_table("ns.u", pa.table({"x": [1, 2, 3]}))
    assert lf.ray.read(f"iceberg://{home}/ns.u").count() == 3
    assert lf.ray.read(table.scan(filter=lf.col("x") > 1)).count() == 2
    with pytest.raises(ConfigError, match="a Scan already fixes them"):
        lf.ray.read(table.scan(), columns=["x"])
    with pytest.raises(ConfigError, match="got int"):
        lf.ray.read(42)  # type: ignore[arg-type]


def test_empty_table_reads_as_empty_dataset_with_schema(ray_local: Any, warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("ns.empty", pa.schema([pa.field("x", pa.int64()), pa.field("y", pa.string())]))
    ds = lf.ray.read(table)
    assert ds.count() == 0
    result = _arrow(ds)
    assert result.num_rows == 0
    assert result.schema == table.scan().schema


# -- memory-aware blocks --------------------------------------------------------------------------

PREFIXES = [
    "event=page_view;site=shop.example.com;path=/catalog/item/",
    "event=add_to_cart;site=shop.example.com;path=/cart/add/",
    "event=purchase;site=shop.example.com;path=/checkout/done/",
]


def _mixed_folder(root: Path) -> Path:
    """Files of repetitive strings (~10:1 on disk) next to files of random float64 (~1:1), of similar disk size."""
    rng = np.random.default_rng(0)
    folder = root / "mixed"
    folder.mkdir()
    for i in range(4):
        n = 36_000
        prefix = np.array(PREFIXES)[rng.integers(0, 3, n)]
        s = np.char.add(prefix, np.char.zfill(rng.integers(0, 10**5, n).astype(str), 5))
        text = pa.table({"s": pa.array(s.tolist(), pa.string()), "f": pa.array(np.zeros(n))})
        pq.write_table(text, folder / f"text-{i}.parquet", compression="zstd", row_group_size=1_800)
        m = 24_000
        num = pa.table({"s": pa.array([""] * m, pa.string()), "f": pa.array(rng.random(m))})
        pq.write_table(num, folder / f"num-{i}.parquet", compression="zstd", row_group_size=3_000)
    return folder


def _spread(sizes: list[int]) -> float:
    return max(sizes) / max(min(sizes), 1)


def _miss(sizes: list[int], target: int) -> float:
    """How far the worst block is from the target, as a factor >= 1 (the smallest block, a remainder, aside)."""
    kept = sorted(sizes)[1:] or sizes
    return max(max(s / target, target / s) for s in kept)


def _block_sizes(ds: Any) -> list[int]:
    import ray

    return [ray.get(ref).nbytes for bundle in ds.iter_internal_ref_bundles() for ref in bundle.block_refs]


def test_blocks_are_sized_by_memory_not_by_file(ray_local: Any, tmp_path: Path) -> None:
    import ray

    folder = _mixed_folder(tmp_path)
    ratios = {}
    for name in ("text-0", "num-0"):
        path = folder / f"{name}.parquet"
        ratios[name] = pq.read_table(path).nbytes / path.stat().st_size
    print(f"decoded/on disk: text {ratios['text-0']:.1f}:1, float {ratios['num-0']:.1f}:1")
    assert ratios["text-0"] > 8
    assert ratios["num-0"] < 2

    target = MiB
    table = lf.open_table(f"parquet://{folder}")
    ours = _block_sizes(lf.ray.read(table, target_bytes=target))
    assert len(ours) == len(table.scan().tasks(target))
    # every block within 1.5x of the target; only the scan's remainder may be smaller
    assert all(size <= 1.5 * target for size in ours), [round(s / target, 2) for s in ours]
    assert all(size >= target / 1.5 for size in sorted(ours)[1:]), [round(s / target, 2) for s in ours]

    # Ray's own reader on the same files plans by files and their size on disk
    results = {"lakefeed": ours, "read_parquet()": _block_sizes(ray.data.read_parquet(str(folder)))}
    context = ray.data.DataContext.get_current()
    if hasattr(context, "use_datasource_v2"):  # Ray >= 2.5x packs files into tasks; the older path: one per file
        context.use_datasource_v2 = False
        try:
            results["read_parquet() per file"] = _block_sizes(ray.data.read_parquet(str(folder)))
        finally:
            context.use_datasource_v2 = True
    for name, sizes in results.items():
        print(
            f"{name}: {len(sizes)} blocks, MiB {sorted(round(s / MiB, 2) for s in sizes)}, "
            f"largest/smallest {_spread(sizes):.2f}, worst miss of the target {_miss(sizes, target):.2f}x"
        )
    for name, sizes in results.items():
        if name != "lakefeed":
            assert _miss(sizes, target) > 3 * _miss(ours, target), name
            assert _spread(sizes) > _spread(sorted(ours)[1:]) or max(sizes) > 3 * target, name


def _one_row_group_files(root: Path, rows: list[int], width: int = 16) -> Path:
    """Parquet files of one row group each (random float32, ~1:1 on disk), as many rows as ``rows`` says."""
    rng = np.random.default_rng(11)
    folder = root / "wide"
    folder.mkdir()
    start = 0
    for i, n in enumerate(rows):
        x = rng.standard_normal((n, width), dtype=np.float32)
        part = pa.table({"id": np.arange(start, start + n), **{f"x{j}": x[:, j] for j in range(width)}})
        pq.write_table(part, folder / f"part-{i}.parquet", row_group_size=n)
        start += n
    return folder


@pytest.mark.parametrize("stacked", [False, True], ids=["rows", "features"])
def test_row_groups_above_the_target_are_handed_out_in_blocks_of_the_target(
    ray_local: Any, tmp_path: Path, stacked: bool
) -> None:
    # 72 bytes a row: row groups of 1.6 to 5.8 MiB, one per file; a task cannot be smaller
    folder = _one_row_group_files(tmp_path, [85_000, 23_000, 40_000, 60_000])
    table = lf.open_table(f"parquet://{folder}")
    target = MiB
    tasks = table.scan().tasks(target)
    assert len(tasks) == 4
    assert all(t.estimated_bytes > 1.5 * target for t in tasks)
    features = [f"x{j}" for j in range(16)]
    ds = (
        lf.ray.read(table, features=features, columns=["id"], target_bytes=target)
        if stacked
        else lf.ray.read(table, target_bytes=target)
    )
    sizes = _block_sizes(ds)
    shown = sorted(round(s / target, 2) for s in sizes)
    # blocks of about 1.2x the target, which Ray passes on as they are; a task of 1.5-1.8x is
    # cut by Ray itself into one of the target and the rest (at least half of it)
    assert all(target / 2 <= s <= 1.5 * target for s in sizes), shown
    assert len(sizes) >= sum(t.estimated_bytes for t in tasks) / (1.5 * target), shown
    assert 1.0 <= float(np.median(sizes)) / target <= 1.3, shown
    # the same rows, once each, in the tasks' order
    got = _arrow(ds)
    want = table.scan().to_arrow()
    assert got.column("id").to_pylist() == [v for t in tasks for v in t.to_arrow().column("id").to_pylist()]
    assert sorted(got.column("id").to_pylist()) == want.column("id").to_pylist()
    if stacked:
        matrix = got.column("features").combine_chunks().to_numpy_ndarray()
        order = np.argsort(got.column("id").to_numpy())
        reference = np.stack([want.column(f).to_numpy() for f in features], axis=1)
        np.testing.assert_array_equal(matrix[order], reference)
    else:
        assert_tables_equal(got.sort_by("id"), want)


# -- features stacked in the read tasks ----------------------------------------------------------


def _stacked_rows(ds: Any) -> tuple[np.ndarray, pa.Table]:
    """The dataset's feature matrix and its other columns, rows in the dataset's order."""
    table = _arrow(ds)
    features = table.column("features").combine_chunks()
    return features.to_numpy_ndarray(), table.drop_columns(["features"])


def test_read_features_stacks_them_like_the_loader(ray_local: Any, any_table: lf.Table) -> None:
    features = ["i", "f", "b"]
    ds = lf.ray.read(any_table, features=features, label="id", columns=["s"], fill_null=0.0, target_bytes=4096)
    known = ds.schema(fetch_if_missing=False)  # from the plan: nothing ran
    assert known is not None
    assert known.names == ["features", "label", "s"]
    matrix, others = _stacked_rows(ds)
    assert matrix.dtype == np.float32
    assert matrix.shape == (DATA.num_rows, 3)

    expected = any_table.scan().to_arrow().sort_by("id")
    stacked = np.stack(
        [pa.compute.fill_null(expected.column(n).cast(pa.float64()), 0.0).to_numpy() for n in features], axis=1
    ).astype(np.float32)
    order = np.argsort(others.column("label").to_numpy())
    np.testing.assert_array_equal(matrix[order], stacked)
    assert others.column("label").take(order).to_pylist() == expected.column("id").to_pylist()
    assert others.column("s").take(order).to_pylist() == expected.column("s").to_pylist()


def test_read_features_hands_out_ready_tensors(ray_local: Any, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1_000, 5), dtype=np.float32)
    data = pa.table({**{f"x{j}": x[:, j] for j in range(5)}, "y": np.arange(1_000)})
    for i in range(2):
        pq.write_table(data.slice(500 * i, 500), tmp_path / f"p{i}.parquet")
    ds = lf.ray.read(f"parquet://{tmp_path}", features=[f"x{j}" for j in range(5)], label="y", target_bytes=4096)
    batches = list(ds.iter_torch_batches(batch_size=64))
    assert all(b["features"].dtype == torch.float32 and b["features"].shape[1] == 5 for b in batches)
    xs = torch.cat([b["features"] for b in batches]).numpy()
    ys = torch.cat([b["label"] for b in batches]).numpy()
    np.testing.assert_array_equal(xs[np.argsort(ys)], x)
    # numpy batches: the same [B, F] matrix
    batch = next(iter(ds.iter_batches(batch_size=10, batch_format="numpy")))
    assert batch["features"].shape == (10, 5)
    assert batch["features"].dtype == np.float32


def test_read_features_keeps_blocks_sized_by_memory(ray_local: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    folder = tmp_path / "floats"
    folder.mkdir()
    for i, rows in enumerate([30_000, 10_000, 50_000, 20_000]):
        x = rng.standard_normal((rows, 8), dtype=np.float32)
        part = pa.table({**{f"x{j}": x[:, j] for j in range(8)}, "y": rng.integers(0, 2, rows)})
        pq.write_table(part, folder / f"part-{i}.parquet", row_group_size=2_000)
    target = 512 << 10
    table = lf.open_table(f"parquet://{folder}")
    ds = lf.ray.read(table, features=[f"x{j}" for j in range(8)], label="y", target_bytes=target)
    sizes = _block_sizes(ds)
    assert len(sizes) == len(table.scan().tasks(target))
    assert all(size <= 1.5 * target for size in sizes), [round(s / target, 2) for s in sizes]
    assert all(size >= target / 1.5 for size in sorted(sizes)[1:]), [round(s / target, 2) for s in sizes]


def test_read_features_null_needs_fill_null(ray_local: Any, table_factory: Factory) -> None:
    table = table_factory("iceberg")
    with pytest.raises(SchemaError, match=r"feature 'f' has \d+ null\(s\) in Ray read task \d+ of table"):
        lf.ray.read(table, features=["f"]).materialize()
    ds = lf.ray.read(table, features=["f"], fill_null=-1.0)
    matrix, others = _stacked_rows(ds)
    assert others.column_names == []
    assert (matrix == -1.0).sum() == DATA.column("f").null_count


def test_read_features_bad_arguments(ray_local: Any, table_factory: Factory) -> None:
    from lakefeed.errors import ColumnNotFoundError

    table = table_factory("iceberg")
    with pytest.raises(ConfigError, match="go with features"):
        lf.ray.read(table, label="id")
    with pytest.raises(ConfigError, match="non-empty list of column names"):
        lf.ray.read(table, features="f")
    with pytest.raises(ConfigError, match="non-empty list"):
        lf.ray.read(table, features=[])
    with pytest.raises(ConfigError, match=r"may not also hold \['label'\]"):
        lf.ray.read(table, features=["f"], label="id", columns=["label"])
    with pytest.raises(SchemaError, match="feature 's' is string, not a number"):
        lf.ray.read(table, features=["f", "s"])
    with pytest.raises(ColumnNotFoundError):
        lf.ray.read(table, features=["nope"])
    with pytest.raises(ColumnNotFoundError, match="label='id'"):
        lf.ray.read(table.scan(columns=["f"]), features=["f"], label="id")
    # a Scan fixes the columns: features and label come from it
    matrix, others = _stacked_rows(
        lf.ray.read(table.scan(columns=["i", "id"]), features=["i"], label="id", fill_null=0)
    )
    assert matrix.shape == (DATA.num_rows, 1)
    assert others.column_names == ["label"]


# -- writing --------------------------------------------------------------------------------------

WRITE_SCHEMA = pa.schema(
    [pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.float64()), pa.field("cat", pa.string())]
)


def _rows(batch: Any) -> Any:
    ids = batch["id"]
    return {"id": ids, "v": ids * 0.5, "cat": np.where(ids % 3 == 0, "a", "b")}


def test_write_appends_all_blocks_in_one_snapshot(ray_local: Any, warehouse: lf.Warehouse) -> None:
    import ray

    from lakefeed.integrations.ray import WRITE_ID_PROPERTY

    table = warehouse.create_table("w.t", WRITE_SCHEMA, partition_by=["cat"])
    table.append(pa.table({"id": [-1], "v": [0.0], "cat": ["a"]}, schema=WRITE_SCHEMA))
    before = len(table.snapshots())
    snapshot_id = lf.ray.write(ray.data.range(2_000, override_num_blocks=6).map_batches(_rows), table)
    assert snapshot_id is not None
    assert table.snapshot_id == snapshot_id
    snapshots = table.snapshots()
    assert len(snapshots) == before + 1
    assert WRITE_ID_PROPERTY in snapshots[-1].summary
    result = table.scan(filter=lf.col("id") >= 0).to_arrow().sort_by("id")
    assert result.column("id").to_pylist() == list(range(2_000))
    assert result.column("cat").to_pylist()[:4] == ["a", "b", "b", "a"]
    assert _orphans(table) == set()
    # and back through Ray: a table written by Ray reads back by Ray
    assert lf.ray.read(table, filter=lf.col("cat") == "a").count() == 1 + len(range(0, 2_000, 3))


def test_write_of_an_empty_dataset_commits_nothing(ray_local: Any, warehouse: lf.Warehouse) -> None:
    import ray

    table = warehouse.create_table("w.e", WRITE_SCHEMA)
    nothing = ray.data.range(10).map_batches(lambda b: {"id": b["id"][:0]}).map_batches(_rows)
    assert lf.ray.write(nothing, table) is None
    assert table.refresh().snapshot_id is None


def test_failing_block_leaves_table_and_storage_unchanged(ray_local: Any, warehouse: lf.Warehouse) -> None:
    import ray

    table = warehouse.create_table("w.f", WRITE_SCHEMA, partition_by=["cat"])
    table.append(pa.table({"id": [1, 2], "v": [1.0, 2.0], "cat": ["a", "b"]}, schema=WRITE_SCHEMA))
    snapshot, root = table.snapshot_id, Path(table.location.removeprefix("file://"))
    before = _files(root)

    def fail_one_block(batch: Any) -> Any:
        if batch["id"][0] == 1_500:  # the 4th of 5 blocks; the others are written
            msg = "injected failure in one block"
            raise ValueError(msg)
        return _rows(batch)

    with pytest.raises(Exception, match="injected failure in one block"):
        lf.ray.write(ray.data.range(2_500, override_num_blocks=5).map_batches(fail_one_block), table)
    assert table.refresh().snapshot_id == snapshot
    assert table.scan().count() == 2
    assert _files(root) == before, "orphan files left behind"


@pytest.mark.parametrize("failure", ["conflicts", "catalog down"])
def test_failed_commit_deletes_the_files(
    ray_local: Any, warehouse: lf.Warehouse, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    import ray
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.table import Transaction

    table = warehouse.create_table("w.c", WRITE_SCHEMA, partition_by=["cat"])
    table.append(pa.table({"id": [1], "v": [1.0], "cat": ["a"]}, schema=WRITE_SCHEMA))
    snapshot, root = table.snapshot_id, Path(table.location.removeprefix("file://"))
    before = _files(root)

    def refuse(self: Transaction) -> None:
        if failure == "conflicts":
            raise CommitFailedException("injected: another writer committed first")
        raise ConnectionError("injected: the catalog is down")

    monkeypatch.setattr(Transaction, "commit_transaction", refuse)
    expected = CommitConflictError if failure == "conflicts" else CommitError
    with pytest.raises(expected, match="table is unchanged"):
        lf.ray.write(ray.data.range(300, override_num_blocks=3).map_batches(_rows), table)
    monkeypatch.undo()
    assert table.refresh().snapshot_id == snapshot
    assert _files(root) == before, "data files or manifests of the failed commit left behind"


def test_commit_retries_after_another_writers_append(
    ray_local: Any, warehouse: lf.Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.table import Transaction

    table = warehouse.create_table("w.r", WRITE_SCHEMA)
    real = Transaction.commit_transaction
    calls: list[int] = []

    def first_loses(self: Transaction) -> Any:
        calls.append(1)
        if len(calls) == 1:
            warehouse.table("w.r").append(pa.table({"id": [-5], "v": [0.0], "cat": ["z"]}, schema=WRITE_SCHEMA))
            raise CommitFailedException("injected: another writer committed first")
        return real(self)

    monkeypatch.setattr(Transaction, "commit_transaction", first_loses)
    lf.ray.write(ray.data.range(100, override_num_blocks=2).map_batches(_rows), table)
    assert len(calls) == 3  # ours (refused), the other writer's, ours again on the new snapshot
    assert table.scan().count() == 101
    assert _orphans(table) == set(), "manifests of the refused attempt left behind"


def test_schema_is_checked_before_writing(ray_local: Any, warehouse: lf.Warehouse) -> None:
    import ray

    table = warehouse.create_table("w.s", WRITE_SCHEMA)
    root = Path(table.location.removeprefix("file://"))
    before = _files(root)
    known = ray.data.from_arrow(pa.table({"id": [1], "v": ["not a number"]}))
    with pytest.raises(SchemaError, match="column 'v' is string, the table has double"):
        lf.ray.write(known, table)  # the schema is known on the driver: nothing ran
    # a schema only known once blocks exist: checked per block on the worker, before its files
    unknown = ray.data.range(50, override_num_blocks=2).map_batches(lambda b: {"id": b["id"], "nope": b["id"]})
    with pytest.raises(SchemaError, match=r"unknown column\(s\) \['nope'\]"):
        lf.ray.write(unknown, table)
    assert table.refresh().snapshot_id is None
    assert _files(root) == before
    # a map that drops a column the input had is fine (the input's schema is not the output's)
    ok = ray.data.from_arrow(pa.table({"id": [1, 2], "junk": ["x", "y"]})).map_batches(lambda b: {"id": b["id"]})
    assert lf.ray.write(ok, table) is not None


def test_write_needs_an_iceberg_table(ray_local: Any, tmp_path: Path) -> None:
    import ray

    pq.write_table(pa.table({"x": [1]}), tmp_path / "a.parquet")
    with pytest.raises(UnsupportedOperationError, match="Ray writes commit to Iceberg tables"):
        lf.ray.write(ray.data.range(3), f"parquet://{tmp_path}")


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["missing", "unreadable"])
def test_unreachable_data_file_names_path_and_worker(ray_local: Any, table_factory: Factory, damage: str) -> None:
    table = table_factory("iceberg")
    ds = lf.ray.read(table)  # planned here, on the driver
    victim = table.scan().tasks()[0].files[0]
    os.remove(victim)
    if damage == "unreadable":
        os.mkdir(victim)  # a directory where the file was: opening it fails, not with "not found"
    expected = DataFileNotFoundError if damage == "missing" else LakefeedError
    with pytest.raises(expected) as info:
        ds.materialize()
    text = str(info.value)
    assert victim in text
    assert f"Ray read task 0 of table {table.name}" in text
    assert f"on worker {os.uname().nodename} (pid " in text
    assert "Ray node " in text
    assert ("is missing" in text) == (damage == "missing")


def test_permission_denied_is_named() -> None:
    pytest.importorskip("ray")
    from lakefeed.integrations.ray import _read_error

    error = _read_error(PermissionError(13, "Permission denied"), "/lake/t/data/a.parquet", "ns.t", 7, 3)
    assert isinstance(error, DataFileNotFoundError)
    assert "data file '/lake/t/data/a.parquet' is not readable (permission denied)" in str(error)
    assert "Ray read task 3 of table ns.t at snapshot 7" in str(error)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    monkeypatch.delitem(sys.modules, "lakefeed.integrations.ray", raising=False)
    import lakefeed.ray

    assert "read" in dir(lakefeed.ray)
    with pytest.raises(MissingDependencyError, match=r"pip install 'lakefeed\[ray\]'"):
        lf.ray.read(tmp_path)
    with pytest.raises(MissingDependencyError, match=r"lakefeed\[ray\]"):
        lf.ray.write(None, tmp_path)  # type: ignore[arg-type]


def test_import_lakefeed_ray_does_not_import_ray() -> None:
    code = "import sys, lakefeed as lf, lakefeed.ray; lf.ray; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_name_in_lakefeed_ray() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lf.ray.nope


def test_write_is_all_or_nothing_even_when_ray_tolerates_failed_blocks(ray_local: Any, warehouse: lf.Warehouse) -> None:
    import ray

    table = warehouse.create_table("w.tolerant", WRITE_SCHEMA)
    context = ray.data.DataContext.get_current()
    before = context.max_errored_blocks
    context.max_errored_blocks = 1  # fine for a read that may skip a bad file; never for a commit

    def fail_one_block(batch: Any) -> Any:
        if batch["id"][0] == 20:
            msg = "injected failure in one block"
            raise ValueError(msg)
        return _rows(batch)

    try:
        data = ray.data.range(40, override_num_blocks=4).map_batches(fail_one_block)
        with pytest.raises(Exception, match="injected failure in one block"):
            lf.ray.write(data, table)
        assert context.max_errored_blocks == 1  # the caller's setting is given back
    finally:
        context.max_errored_blocks = before
    assert table.refresh().snapshot_id is None


def test_an_empty_dataset_of_the_wrong_schema_is_refused(ray_local: Any, warehouse: lf.Warehouse) -> None:
    import ray

    table = warehouse.create_table("w.empty", WRITE_SCHEMA)
    with pytest.raises(Exception, match=r"unknown column\(s\) \['nope'\]"):
        lf.ray.write(ray.data.from_arrow(pa.table({"nope": pa.array([], pa.string())})), table)
    assert table.refresh().snapshot_id is None
