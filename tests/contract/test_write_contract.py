"""Writes, pinning and time travel on every writable format."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow as pa
import pytest

import lakefeed as lf
from lakefeed.errors import SchemaError
from lakefeed.testing import assert_tables_equal
from tests.conftest import DATA, WRITABLE_KINDS

Factory = Callable[..., lf.Table]


def _values(table: pa.Table) -> pa.Table:
    return pa.table({n: table.column(n).to_pylist() for n in table.column_names})


def _more(start: int, n: int = 5) -> pa.Table:
    rows = DATA.slice(0, n)
    return rows.set_column(0, rows.schema.field("id"), pa.array(range(start, start + n), pa.int64()))


@pytest.mark.parametrize("kind", WRITABLE_KINDS)
def test_scan_pins_its_snapshot(table_factory: Factory, kind: str) -> None:
    table = table_factory(kind)
    scan = table.scan(filter=lf.col("i") > 10)
    before = scan.to_arrow()
    table.append(_more(50_000))
    table.append(_more(60_000))
    assert_tables_equal(scan.to_arrow(), before)
    assert table.refresh().scan().count() == DATA.num_rows + 10


@pytest.mark.parametrize("kind", WRITABLE_KINDS)
def test_time_travel_by_id_and_datetime(table_factory: Factory, kind: str) -> None:
    table = table_factory(kind)
    first = table.snapshot_id
    assert first is not None
    time.sleep(0.05)
    moment = datetime.now(UTC)
    time.sleep(0.05)
    table.append(_more(70_000))
    assert table.snapshot_id != first
    assert table.scan(snapshot=first).count() == DATA.num_rows
    assert table.scan(snapshot=moment).count() == DATA.num_rows
    assert table.scan().count() == DATA.num_rows + 5


@pytest.mark.parametrize("kind", WRITABLE_KINDS)
def test_write_with_wrong_schema_writes_nothing(table_factory: Factory, kind: str) -> None:
    table = table_factory(kind)
    before = table.snapshot_id
    bad_type = _more(80_000).set_column(1, "i", pa.array(["x"] * 5))
    with pytest.raises(SchemaError, match="column 'i' is string"):
        table.append(bad_type)
    with pytest.raises(SchemaError, match="unknown column"):
        table.append(_more(80_000).append_column("extra", pa.array([1] * 5)))
    with pytest.raises(SchemaError, match="required column 'id'"):
        table.append(_more(80_000).drop_columns(["id"]))
    assert table.refresh().snapshot_id == before
    assert table.scan().count() == DATA.num_rows


@pytest.mark.parametrize("kind", WRITABLE_KINDS)
def test_overwrite_replaces_everything(table_factory: Factory, kind: str) -> None:
    table = table_factory(kind)
    table.overwrite(_more(90_000))
    assert sorted(table.scan(columns=["id"]).to_arrow().column("id").to_pylist()) == list(range(90_000, 90_005))


@pytest.mark.parametrize("kind", WRITABLE_KINDS)
def test_overwrite_by_filter(table_factory: Factory, kind: str) -> None:
    table = table_factory(kind)
    new = _more(95_000).set_column(7, table.schema.field("cat"), pa.array(["red"] * 5))
    table.overwrite(new, filter=lf.col("cat") == "red")
    result = table.scan().to_arrow()
    expected = pa.concat_tables([DATA.filter(pa.compute.field("cat") != "red"), new.cast(DATA.schema)])
    assert_tables_equal(_values(result.select(DATA.column_names)), _values(expected))


def test_appends_accept_widening_and_pandas(table_factory: Factory) -> None:
    table = table_factory("iceberg")
    narrow = _more(100_000).set_column(0, "id", pa.array(range(100_000, 100_005), pa.int32()))
    table.append(narrow)
    table.append(_more(110_000).to_pandas())
    assert table.scan(filter=lf.col("id") >= 100_000).count() == 10


@pytest.mark.parametrize("kind", [*WRITABLE_KINDS, pytest.param("paimon_pk", marks=pytest.mark.paimon), "parquet"])
def test_a_deleted_data_file_is_named(table_factory: Factory, kind: str) -> None:
    from pathlib import Path

    from lakefeed.errors import DataFileNotFoundError

    table = table_factory(kind)
    scan = table.scan()
    victim = scan.tasks()[0].files[0]
    Path(victim).unlink()
    with pytest.raises(DataFileNotFoundError, match=Path(victim).name):
        scan.to_arrow()


def _inject_delta_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Rust writer gets a stream that fails after its first batch: files are written, no commit."""
    import deltalake

    real = deltalake.write_deltalake

    def failing(uri: str, data: pa.Table, **kwargs: object) -> object:
        batches = data.to_batches(max_chunksize=max(1, data.num_rows // 2))

        def stream() -> object:
            yield batches[0]
            raise OSError("injected: storage went away while writing")

        reader = pa.RecordBatchReader.from_batches(data.schema, stream())
        return real(uri, reader, **kwargs)

    monkeypatch.setattr(deltalake, "write_deltalake", failing)


def _inject_paimon_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """pypaimon writes the data files, then its commit step fails."""
    from pypaimon.write.table_commit import BatchTableCommit

    def failing(self: object, *args: object, **kwargs: object) -> None:
        raise OSError("injected: storage went away while committing")

    monkeypatch.setattr(BatchTableCommit, "commit", failing)


@pytest.mark.parametrize(
    "kind", [pytest.param("delta", marks=pytest.mark.delta), pytest.param("paimon", marks=pytest.mark.paimon)]
)
@pytest.mark.parametrize("operation", ["append", "overwrite"])
def test_failure_midway_leaves_table_unchanged(
    table_factory: Factory, monkeypatch: pytest.MonkeyPatch, kind: str, operation: str
) -> None:
    table = table_factory(kind)
    before_snapshot = table.snapshot_id
    before = table.scan().to_arrow()
    (_inject_delta_failure if kind == "delta" else _inject_paimon_failure)(monkeypatch)
    write = table.append if operation == "append" else table.overwrite
    with pytest.raises(lf.errors.CommitError, match="injected"):
        write(_more(120_000, n=50))
    monkeypatch.undo()
    fresh = table.refresh()
    assert fresh.snapshot_id == before_snapshot
    assert_tables_equal(fresh.scan().to_arrow(), before)


@pytest.mark.parametrize(
    "kind", [pytest.param("delta", marks=pytest.mark.delta), pytest.param("paimon", marks=pytest.mark.paimon)]
)
def test_create_failing_midway_leaves_no_table(tmp_path: object, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    (_inject_delta_failure if kind == "delta" else _inject_paimon_failure)(monkeypatch)
    uri = f"delta://{tmp_path}/t" if kind == "delta" else f"paimon://{tmp_path}/db.t"
    with pytest.raises(lf.errors.CommitError, match="injected"):
        lf.create_table(uri, DATA)
    monkeypatch.undo()
    with pytest.raises(lf.TableNotFoundError):
        lf.open_table(uri)
