"""Iceberg writes: one atomic commit each, checked against a dict oracle; failures change nothing."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import (
    ConfigError,
    DataFileNotFoundError,
    SchemaError,
    TableExistsError,
    TableNotFoundError,
)

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.float64()), ("tag", pa.string())])


def _rows(ids: list[int], seed: int) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "id": ids,
            "v": [None if rng.random() < 0.1 else rng.random() for _ in ids],
            "tag": [rng.choice(["a", "b", None]) for _ in ids],
        },
        schema=SCHEMA,
    )


def _state(table: lf.Table) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in table.scan().to_arrow().to_pylist()}


def test_upserts_and_deletes_match_a_dict_oracle(warehouse: lf.Warehouse) -> None:
    rng = random.Random(3)
    first = _rows(list(range(200)), seed=0)
    table = warehouse.create_table("w.oracle", first, primary_key=["id"])
    oracle = {r["id"]: r for r in first.to_pylist()}
    for step in range(6):
        ids = rng.sample(range(400), 60)
        batch = _rows(ids, seed=step + 1)
        table.upsert(batch)
        oracle.update({r["id"]: r for r in batch.to_pylist()})
        cut = rng.randint(0, 400)
        table.delete((lf.col("id") > cut) & (lf.col("tag") == "a"))
        oracle = {k: r for k, r in oracle.items() if not (k > cut and r["tag"] == "a")}
        assert _state(table) == oracle


def test_delete_keeps_rows_where_the_filter_is_null(warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("w.nulls", pa.table({"id": [1, 2, 3], "v": [1.0, None, 5.0]}))
    table.delete(lf.col("v") > 2.0)
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2]
    table.delete(~(lf.col("v") > 2.0))
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [2]


def test_delete_matching_nothing_is_a_quiet_no_op(warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("w.noop", pa.table({"id": [1, 2]}))
    table.delete(lf.col("id") == 99)  # the suite runs with -W error: no warning may escape
    assert table.scan().count() == 2


def test_each_write_is_one_commit(warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("w.commits", _rows([1, 2, 3], 0), primary_key=["id"])
    ice = table.pyiceberg_table
    logs = []
    for write in (
        lambda: table.append(_rows([4], 1)),
        lambda: table.upsert(_rows([1, 9], 2)),
        lambda: table.delete(lf.col("id") == 2),
        lambda: table.overwrite(_rows([7], 3), filter=lf.col("id") >= 4),
    ):
        before = len(ice.refresh().metadata.metadata_log)
        write()
        logs.append(len(ice.refresh().metadata.metadata_log) - before)
    assert logs == [1, 1, 1, 1], "each write adds exactly one metadata version"


def test_create_from_schema_with_partitions(warehouse: lf.Warehouse) -> None:
    schema = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us")), ("country", pa.string())])
    table = warehouse.create_table(
        "w.parts",
        schema,
        primary_key=["id"],
        partition_by=["day(ts)", "country", "bucket(8, id)", "truncate(2, country)"],
    )
    assert table.partition_by == ("day(ts)", "country", "bucket(8, id)", "truncate(2, country)")
    assert table.primary_key == ("id",)
    assert table.schema.field("id").nullable is False
    assert table.snapshot_id is None
    assert table.scan().to_arrow().num_rows == 0
    assert table.scan().count() == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"primary_key": ["nope"]}, SchemaError, "primary key column 'nope'"),
        ({"partition_by": ["day(nope)"]}, SchemaError, "partition column 'nope'"),
        ({"partition_by": ["weekly(id)"]}, ConfigError, "not understood"),
        ({"partition_by": ["bucket(id)"]}, ConfigError, "needs a width"),
        ({"primary_key": "id"}, ConfigError, "take lists"),
        ({"primary_key": ["v"]}, SchemaError, "use an integer"),
    ],
)
def test_bad_create_arguments(warehouse: lf.Warehouse, kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        warehouse.create_table("w.bad", _rows([1], 0), **kwargs)
    assert not warehouse.table_exists("w.bad"), "a failed create leaves no table"


def test_duplicate_keys_are_rejected_before_writing(warehouse: lf.Warehouse) -> None:
    with pytest.raises(SchemaError, match="appear more than once"):
        warehouse.create_table("w.dupe", _rows([1, 1], 0), primary_key=["id"])
    table = warehouse.create_table("w.dupe", _rows([1], 0), primary_key=["id"])
    before = table.snapshot_id
    with pytest.raises(SchemaError, match="appear more than once"):
        table.upsert(_rows([5, 5], 1))
    with pytest.raises(SchemaError, match="required but has 1 null"):
        table.append(pa.table({"id": pa.array([None], pa.int64())}))
    assert table.refresh().snapshot_id == before


def test_upsert_needs_a_primary_key(warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("w.nokey", _rows([1], 0))
    with pytest.raises(SchemaError, match="needs a primary key"):
        table.upsert(_rows([1], 1))


def test_exists_and_exist_ok(warehouse: lf.Warehouse) -> None:
    warehouse.create_table("w.once", _rows([1], 0))
    with pytest.raises(TableExistsError, match="already exists"):
        warehouse.create_table("w.once", _rows([2], 0))
    again = warehouse.create_table("w.once", _rows([2], 0), exist_ok=True)
    assert again.scan().count() == 1


def test_missing_table_lists_tables(warehouse: lf.Warehouse) -> None:
    warehouse.create_table("w.here", _rows([1], 0))
    with pytest.raises(TableNotFoundError, match=r"w.there not found .* tables: \['w.here'\]"):
        warehouse.table("w.there")
    with pytest.raises(ConfigError, match="not valid"):
        warehouse.table("bad name!")


def test_drop_table_with_purge_removes_files(warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("w.gone", _rows([1, 2], 0))
    location = Path(table.location.removeprefix("file://"))
    assert location.exists()
    warehouse.drop_table("w.gone", purge=True)
    assert not location.exists()
    assert warehouse.list_tables() == []
    with pytest.raises(TableNotFoundError):
        warehouse.drop_table("w.gone")


def test_missing_data_file_is_named(warehouse: lf.Warehouse) -> None:
    table = warehouse.create_table("w.lost", _rows(list(range(50)), 0))
    table.append(_rows(list(range(50, 60)), 1))
    victim = table.scan().tasks()[0].files[-1]
    Path(victim).unlink()
    with pytest.raises(DataFileNotFoundError, match=Path(victim).name):
        table.scan().to_arrow()


# -- failures midway leave the table at its previous snapshot -------------------------------


def _failing_after_first_file(real: Any) -> Any:
    def write_file(*args: Any, **kwargs: Any) -> Iterator[Any]:
        files = real(*args, **kwargs)
        yield next(iter(files))  # one data file really is written...
        raise OSError("injected: storage went away while writing")  # ...then the writer fails

    return write_file


@pytest.mark.parametrize("operation", ["append", "overwrite", "upsert", "create"])
def test_failure_midway_leaves_table_unchanged(
    warehouse: lf.Warehouse, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    import pyiceberg.io.pyarrow as pio

    table = warehouse.create_table("w.fail", _rows(list(range(100)), 0), primary_key=["id"], partition_by=["tag"])
    before_snapshot = table.snapshot_id
    before_rows = _state(table)
    monkeypatch.setattr(pio, "write_file", _failing_after_first_file(pio.write_file))
    new = _rows(list(range(50, 250)), 9)
    writes = {
        "append": lambda: table.append(new),
        "overwrite": lambda: table.overwrite(new),
        "upsert": lambda: table.upsert(new),
        "create": lambda: warehouse.create_table("w.fail2", new, partition_by=["tag"]),
    }
    with pytest.raises(OSError, match="injected"):
        writes[operation]()
    monkeypatch.undo()
    fresh = lf.Warehouse(warehouse.home).table("w.fail")
    assert fresh.snapshot_id == before_snapshot
    assert _state(fresh) == before_rows
    assert not warehouse.table_exists("w.fail2")


def test_commit_failure_leaves_table_unchanged(warehouse: lf.Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import CommitFailedException

    table = warehouse.create_table("w.conflict", _rows([1, 2], 0), primary_key=["id"])
    before = table.snapshot_id

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise CommitFailedException("injected: the catalog row changed under us")

    monkeypatch.setattr(SqlCatalog, "commit_table", refuse)
    with pytest.raises(lf.errors.CommitConflictError, match="another writer committed first"):
        table.upsert(_rows([2, 3], 1))
    monkeypatch.undo()
    assert table.refresh().snapshot_id == before
    assert sorted(_state(table)) == [1, 2]
