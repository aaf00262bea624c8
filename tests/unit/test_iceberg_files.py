"""Iceberg appends of data files written apart: all files committed in one snapshot, or none kept."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import CommitConflictError, CommitError, ConfigError, SchemaError
from lakefeed.tables.iceberg import IcebergTable
from lakefeed.tables.iceberg_files import WRITE_ID_PROPERTY, IcebergFileAppend

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.float64()), ("cat", pa.string())])


def _rows(ids: range) -> pa.Table:
    return pa.table(
        {"id": list(ids), "v": [i * 0.5 for i in ids], "cat": ["a" if i % 3 == 0 else "b" for i in ids]},
        schema=SCHEMA,
    )


def _table(warehouse: lf.Warehouse, name: str) -> IcebergTable:
    table = warehouse.create_table(name, SCHEMA, partition_by=["cat"])
    table.append(_rows(range(-2, 0)))
    assert isinstance(table, IcebergTable)
    return table


def _files(table: lf.Table) -> set[str]:
    """Every file of the table but its metadata.json versions (a schema change adds one)."""
    root = Path(table.location.removeprefix("file://"))
    return {str(p) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".metadata.json")}


def _local(path: str) -> Path:
    return Path(path.removeprefix("file://"))


def test_files_written_apart_are_committed_in_one_snapshot(warehouse: lf.Warehouse) -> None:
    table = _table(warehouse, "f.ok")
    before = len(table.snapshots())
    append = IcebergFileAppend(table, what="backfill", snapshot_properties={"job": "unit"})
    workers = [pickle.loads(pickle.dumps(append)) for _ in range(2)]  # the catalog stays behind
    files = [
        *workers[0].write([_rows(range(0, 50)), _rows(range(0, 0))], first_file=0),
        *workers[1].write([_rows(range(50, 120))], first_file=1_000),
    ]
    assert len({f.path for f in files}) == len(files) == 4  # two partitions per worker, no name clash
    assert table.refresh().scan().count() == 2, "written files are not visible before the commit"
    snapshot_id = append.commit(files)
    assert snapshot_id is not None
    assert append.state == "committed"
    assert table.refresh().snapshot_id == snapshot_id == append.snapshot_id
    snapshots = table.snapshots()
    assert len(snapshots) == before + 1
    assert snapshots[-1].summary[WRITE_ID_PROPERTY] == str(append.write_id)
    assert snapshots[-1].summary["job"] == "unit"
    ids = table.scan(filter=lf.col("id") >= 0).to_arrow().sort_by("id").column("id").to_pylist()
    assert ids == list(range(120))
    with pytest.raises(CommitError, match="already committed"):
        append.commit(files)


def test_commit_refused_deletes_the_files_and_keeps_the_snapshot(warehouse: lf.Warehouse) -> None:
    """Files written, then the commit fails (the schema changed meanwhile): no snapshot, no files."""
    from pyiceberg.types import StringType

    table = _table(warehouse, "f.conflict")
    snapshot, before = table.snapshot_id, _files(table)
    append = IcebergFileAppend(table, what="backfill")
    files = append.write([_rows(range(100))])
    assert all(_local(f.path).exists() for f in files)
    with table.pyiceberg_table.update_schema() as update:  # another writer evolves the table
        update.add_column("extra", StringType())
    with pytest.raises(CommitConflictError, match=r"backfill to table f\.conflict: the table's schema or partitioning"):
        append.commit(files)
    assert append.state == "aborted"
    assert table.refresh().snapshot_id == snapshot
    assert table.scan().count() == 2
    assert not any(_local(f.path).exists() for f in files)
    assert _files(table) == before, "files of the refused commit left behind"


def test_abort_deletes_files_known_only_by_the_write_id(warehouse: lf.Warehouse) -> None:
    table = _table(warehouse, "f.abort")
    snapshot, before = table.snapshot_id, _files(table)
    append = IcebergFileAppend(table)
    worker = pickle.loads(pickle.dumps(append))
    files = worker.write([_rows(range(30))])  # the driver never hears of these (the worker's task failed)
    assert files
    assert _files(table) != before
    append.abort()
    assert append.state == "aborted"
    assert _files(table) == before
    assert table.refresh().snapshot_id == snapshot
    append.abort()  # a second abort is a no-op
    with pytest.raises(CommitError, match="already aborted"):
        append.commit([])


def test_a_failing_write_deletes_its_own_files(warehouse: lf.Warehouse) -> None:
    table = _table(warehouse, "f.fail")
    before = _files(table)
    append = IcebergFileAppend(table, what="backfill")

    def failing() -> Iterator[pa.Table]:
        yield _rows(range(40))  # written...
        msg = "injected: the source failed"
        raise ValueError(msg)  # ...then deleted

    with pytest.raises(ValueError, match="injected"):
        append.write(failing())
    assert _files(table) == before
    misfit = pa.table({"id": [1], "v": ["not a number"]})
    with pytest.raises(SchemaError, match=r"backfill to table f\.fail does not fit its schema"):
        append.write([_rows(range(40)), misfit])
    assert _files(table) == before
    assert append.state == "writing"  # the append itself goes on: other writes may still commit


def test_empty_commit_and_bad_arguments(warehouse: lf.Warehouse) -> None:
    table = _table(warehouse, "f.empty")
    snapshot = table.snapshot_id
    append = IcebergFileAppend(table)
    assert append.commit(append.write([_rows(range(0))])) is None
    assert append.state == "committed"
    assert table.refresh().snapshot_id == snapshot
    with pytest.raises(ConfigError, match="attempts must be at least 1, got 0"):
        IcebergFileAppend(table, attempts=0)
    append.check_schema(pa.schema([pa.field("id", pa.int32())]))
    with pytest.raises(SchemaError, match="column 'v' is string"):
        append.check_schema(pa.schema([pa.field("id", pa.int64()), pa.field("v", pa.string())]))
