"""Tables in four formats behind one API: :func:`open_table`, :func:`create_table`, :class:`Warehouse`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lakefeed.errors import ConfigError, TableNotFoundError
from lakefeed.io import filesystem_and_path, is_uri
from lakefeed.tables.base import Scan, ScanTask, Snapshot, Table, TableStats
from lakefeed.tables.warehouse import Warehouse

__all__ = ["Scan", "ScanTask", "Snapshot", "Table", "TableStats", "Warehouse", "create_table", "open_table"]

_SCHEMES = ("iceberg", "paimon", "delta", "parquet")


def _split(uri: str) -> tuple[str | None, str]:
    for scheme in _SCHEMES:
        prefix = f"{scheme}://"
        if uri.startswith(prefix):
            return scheme, uri[len(prefix) :]
    return None, uri


def _split_name(rest: str, scheme: str) -> tuple[str, str]:
    location, sep, name = rest.rpartition("/")
    if not sep or not name or "." not in name:
        msg = f"{scheme}:// URIs end in '/namespace.table', e.g. {scheme}://path/to/warehouse/shop.clicks; got {scheme}://{rest}"
        raise ConfigError(msg)
    return location or "/", name


def open_table(location: str | os.PathLike[str]) -> Table:
    """Open a table by URI, or by folder (the format is detected).

    Args:
        location: ``iceberg://HOME/ns.table`` (an embedded warehouse home), ``paimon://WAREHOUSE/db.table``,
            ``delta://PATH``, ``parquet://PATH-OR-GLOB``, or a local folder/file.

    Returns:
        The table.

    Raises:
        TableNotFoundError: Nothing is there.
        ConfigError: The URI is malformed.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> home = tempfile.mkdtemp()
        >>> _ = lf.Warehouse(home).create_table("shop.clicks", pa.table({"x": [1]}))
        >>> lf.open_table(f"iceberg://{home}/shop.clicks").format
        'iceberg'
    """
    text = os.fspath(location)
    scheme, rest = _split(text)
    if scheme == "iceberg":
        home, name = _split_name(rest, "iceberg")
        return Warehouse(home).table(name)
    if scheme == "paimon":
        from lakefeed.tables.paimon import PaimonTable

        warehouse, name = _split_name(rest, "paimon")
        return PaimonTable(warehouse, name)
    if scheme == "delta":
        from lakefeed.tables.delta import DeltaTable

        return DeltaTable(rest)
    if scheme == "parquet":
        from lakefeed.tables.parquet import ParquetTable

        return ParquetTable(rest)
    return _open_detected(text)


def _open_detected(text: str) -> Table:
    import pyarrow.fs as pafs

    fs, path = filesystem_and_path(text)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound and not (set("*?[") & set(path)):
        msg = f"no table at {text!r}; pass a URI such as iceberg://HOME/ns.table, delta://PATH or parquet://PATH"
        raise TableNotFoundError(msg)
    if info.type == pafs.FileType.Directory:
        children = {Path(i.path).name for i in fs.get_file_info(pafs.FileSelector(path))}
        if "_delta_log" in children:
            from lakefeed.tables.delta import DeltaTable

            return DeltaTable(text)
        if {"schema", "snapshot"} <= children:
            from lakefeed.tables.paimon import PaimonTable

            table_dir = Path(path)
            database = table_dir.parent.name.removesuffix(".db")
            return PaimonTable(str(table_dir.parent.parent), f"{database}.{table_dir.name}")
        if "metadata" in children and not is_uri(text):
            from lakefeed.tables.iceberg import open_static_iceberg

            return open_static_iceberg(path)
    from lakefeed.tables.parquet import ParquetTable

    return ParquetTable(text)


def create_table(
    location: str,
    data_or_schema: Any,
    *,
    primary_key: Sequence[str] | None = None,
    partition_by: Sequence[str] | None = None,
) -> Table:
    """Create a table by URI: ``iceberg://HOME/ns.table``, ``paimon://WAREHOUSE/db.table`` or ``delta://PATH``.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> t = lf.create_table(f"delta://{tempfile.mkdtemp()}/events", pa.table({"x": [1, 2]}))
        >>> t.format, t.scan().count()
        ('delta', 2)
    """
    scheme, rest = _split(location)
    if scheme == "iceberg":
        home, name = _split_name(rest, "iceberg")
        return Warehouse(home).create_table(name, data_or_schema, primary_key=primary_key, partition_by=partition_by)
    if scheme == "paimon":
        from lakefeed.tables.paimon import create_paimon_table

        warehouse, name = _split_name(rest, "paimon")
        return create_paimon_table(warehouse, name, data_or_schema, primary_key=primary_key, partition_by=partition_by)
    if scheme == "delta":
        from lakefeed.tables.delta import create_delta_table

        return create_delta_table(rest, data_or_schema, primary_key=primary_key, partition_by=partition_by)
    msg = f"create_table needs an iceberg://, paimon:// or delta:// URI (plain Parquet is read-only), got {location!r}"
    raise ConfigError(msg)
