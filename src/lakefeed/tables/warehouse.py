"""The :class:`Warehouse`: an Iceberg catalog plus the place its tables' files live."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakefeed.config import CatalogConfig, PyIcebergCatalogConfig, SqlCatalogConfig
from lakefeed.errors import (
    CatalogError,
    CommitConflictError,
    ConfigError,
    NamespaceNotFoundError,
    SchemaError,
    TableExistsError,
    TableNotFoundError,
)
from lakefeed.io import resolve_home, to_uri
from lakefeed.tables.iceberg import IcebergTable, create_iceberg_table

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

__all__ = ["Warehouse"]

DEFAULT_NAMESPACE = "default"
_IDENT = re.compile(r"^([A-Za-z_][\w-]*\.)?[A-Za-z_][\w-]*$")


class Warehouse:
    """Iceberg tables in a catalog: embedded (SQLite + a local folder) by default.

    Args:
        home: Embedded mode: the folder holding ``catalog.db`` and ``warehouse/``. Defaults to
            ``$LAKEFEED_HOME``, else ``~/.lakefeed``.
        catalog_uri: A SQLAlchemy URL for pyiceberg's SQL catalog, e.g.
            ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.
        warehouse: Where table files go with ``catalog_uri``: a folder or an object-store URI.
        catalog: Any pyiceberg catalog as typed configuration (exclusive with the above).

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> wh = lf.Warehouse(tempfile.mkdtemp())
        >>> _ = wh.create_table("shop.clicks", pa.table({"user_id": [1, 2], "clicked": [True, False]}))
        >>> wh.list_tables()
        ['shop.clicks']
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        catalog_uri: str | None = None,
        warehouse: str | os.PathLike[str] | None = None,
        catalog: CatalogConfig | None = None,
    ) -> None:
        self.home: Path | None = None
        if catalog is not None:
            if catalog_uri is not None or warehouse is not None or home is not None:
                msg = "pass either catalog=... or home/catalog_uri/warehouse, not both"
                raise ConfigError(msg)
            self.config: CatalogConfig = catalog
        elif catalog_uri is not None:
            if warehouse is None:
                msg = f"Warehouse(catalog_uri={_redact(catalog_uri)!r}) needs warehouse=... (a folder or s3://bucket/prefix)"
                raise ConfigError(msg)
            self.config = SqlCatalogConfig(uri=catalog_uri, warehouse=to_uri(warehouse))
        else:
            self.home = resolve_home(home)
            if self.home.exists() and not self.home.is_dir():
                msg = f"the lakefeed home {str(self.home)!r} is a file; give a folder (it is created if missing)"
                raise ConfigError(msg)
            self.home.mkdir(parents=True, exist_ok=True)
            wh_dir = Path(warehouse) if warehouse is not None else self.home / "warehouse"
            self.config = SqlCatalogConfig(uri=f"sqlite:///{self.home / 'catalog.db'}", warehouse=to_uri(wh_dir))
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        """The pyiceberg catalog (loaded on first use)."""
        if self._catalog is None:
            self._catalog = self._load_catalog()
        return self._catalog

    def _load_catalog(self) -> Catalog:
        cfg = self.config
        with self._catalog_errors("open the catalog"):
            if isinstance(cfg, SqlCatalogConfig):
                from pyiceberg.catalog.sql import SqlCatalog

                return SqlCatalog(cfg.name, uri=cfg.uri, warehouse=cfg.warehouse, **cfg.properties)
            assert isinstance(cfg, PyIcebergCatalogConfig)
            from pyiceberg.catalog import load_catalog

            return load_catalog(cfg.name, **cfg.properties)

    @contextmanager
    def _catalog_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except (ConfigError, TableNotFoundError, TableExistsError, NamespaceNotFoundError):
            raise
        except Exception as exc:
            name = type(exc).__name__
            if name in {"OperationalError", "InterfaceError", "ConnectionError", "ConnectionRefusedError"}:
                msg = f"cannot {action}: the catalog at {self._where()} is unreachable ({str(exc).splitlines()[0]})"
                raise CatalogError(msg) from exc
            raise

    def _where(self) -> str:
        cfg = self.config
        if isinstance(cfg, SqlCatalogConfig):
            return _redact(cfg.uri)
        return cfg.properties.get("uri", cfg.name)

    @staticmethod
    def _identifier(name: str) -> tuple[str, str]:
        if not isinstance(name, str) or not _IDENT.match(name):
            msg = f"table name {name!r} is not valid; use 'namespace.table' or 'table' (letters, digits, _ and -)"
            raise ConfigError(msg)
        namespace, _, table = name.rpartition(".")
        return namespace or DEFAULT_NAMESPACE, table

    def _full(self, name: str) -> str:
        ns, table = self._identifier(name)
        return f"{ns}.{table}"

    def create_table(
        self,
        name: str,
        data_or_schema: Any,
        *,
        primary_key: Sequence[str] | None = None,
        partition_by: Sequence[str] | None = None,
        properties: dict[str, str] | None = None,
        exist_ok: bool = False,
    ) -> IcebergTable:
        """Create an Iceberg table from Arrow data or an Arrow schema, in one commit.

        Args:
            name: ``"namespace.table"`` (the namespace is created on demand) or ``"table"``.
            data_or_schema: A ``pyarrow.Table``/``RecordBatch``/pandas DataFrame (written as the
                first snapshot) or a ``pyarrow.Schema`` (an empty table).
            primary_key: Key columns (made required); enables :meth:`~IcebergTable.upsert`.
            partition_by: Fields like ``"country"``, ``"day(ts)"``, ``"bucket(16, user_id)"``.
            properties: Iceberg table properties.
            exist_ok: Return the existing table instead of raising if it exists.

        Returns:
            The new table.

        Raises:
            TableExistsError: The table exists and ``exist_ok`` is False.
            SchemaError: A key or partition column is missing, or the data has duplicate keys.
        """
        ns, table = self._identifier(name)
        full = f"{ns}.{table}"
        from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError
        from pyiceberg.io.pyarrow import UnsupportedPyArrowTypeException

        with self._catalog_errors(f"create table {full}"):
            self.catalog.create_namespace_if_not_exists(ns)
            if self.catalog.table_exists(full):
                if exist_ok:
                    return self.table(full)
                msg = f"table {full} already exists in {self._where()}; use wh.table({full!r}) or exist_ok=True"
                raise TableExistsError(msg)
            try:
                tbl = create_iceberg_table(
                    self.catalog,
                    full,
                    data_or_schema,
                    primary_key=primary_key,
                    partition_by=partition_by,
                    properties=properties,
                )
            except UnsupportedPyArrowTypeException as exc:
                raise SchemaError(_unsupported_type(full, exc.field)) from exc
            except (TableAlreadyExistsError, CommitFailedException) as exc:
                if isinstance(exc, CommitFailedException) and "already exists" not in str(exc):
                    msg = f"create table {full}: the catalog refused the commit ({exc}); nothing was created"
                    raise CommitConflictError(msg) from exc
                if exist_ok:
                    return self.table(full)
                msg = f"table {full} already exists in {self._where()}; use wh.table({full!r}) or exist_ok=True"
                raise TableExistsError(msg) from exc
        return IcebergTable(tbl, full)

    def table(self, name: str) -> IcebergTable:
        """Open an existing table.

        Raises:
            TableNotFoundError: No such table; the message lists the namespace's tables.
        """
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        full = self._full(name)
        with self._catalog_errors(f"open table {full}"):
            try:
                tbl = self.catalog.load_table(full)
            except (NoSuchTableError, NoSuchNamespaceError) as exc:
                existing = self.list_tables()
                msg = f"table {full} not found in {self._where()}; tables: {existing or 'none'}"
                raise TableNotFoundError(msg) from exc
        return IcebergTable(tbl, full)

    def table_exists(self, name: str) -> bool:
        """Whether the table exists."""
        with self._catalog_errors("check a table"):
            return bool(self.catalog.table_exists(self._full(name)))

    def list_namespaces(self) -> list[str]:
        """All namespaces, sorted."""
        with self._catalog_errors("list namespaces"):
            return sorted(".".join(ns) for ns in self.catalog.list_namespaces())

    def list_tables(self, namespace: str | None = None) -> list[str]:
        """``"namespace.table"`` names of all tables (or one namespace's), sorted.

        Raises:
            NamespaceNotFoundError: ``namespace`` does not exist.
        """
        from pyiceberg.exceptions import NoSuchNamespaceError

        namespaces = [namespace] if namespace is not None else self.list_namespaces()
        out: list[str] = []
        with self._catalog_errors("list tables"):
            for ns in namespaces:
                try:
                    out.extend(".".join(ident) for ident in self.catalog.list_tables(ns))
                except NoSuchNamespaceError as exc:
                    msg = f"namespace {ns!r} not found in {self._where()}; namespaces: {self.list_namespaces()}"
                    raise NamespaceNotFoundError(msg) from exc
        return sorted(out)

    def drop_table(self, name: str, *, purge: bool = False) -> None:
        """Remove a table from the catalog (``purge=True`` also deletes its files).

        Raises:
            TableNotFoundError: No such table.
        """
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        full = self._full(name)
        location = self.table(full).location if purge else None
        with self._catalog_errors(f"drop table {full}"):
            try:
                self.catalog.drop_table(full)
            except (NoSuchTableError, NoSuchNamespaceError) as exc:
                msg = f"table {full} not found in {self._where()}"
                raise TableNotFoundError(msg) from exc
        if location is not None:
            _remove_tree(location)

    def close(self) -> None:
        """Release the catalog's database connections (it reconnects if used again)."""
        engine = getattr(self._catalog, "engine", None)
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Warehouse({self._where()!r})"


def _remove_tree(location: str) -> None:
    from lakefeed.io import filesystem_and_path

    fs, path = filesystem_and_path(location)
    fs.delete_dir(path)


def _redact(uri: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", uri)


def _unsupported_type(table: str, field: Any) -> str:
    """Why an Arrow column cannot be an Iceberg column, and what to cast it to."""
    import pyarrow as pa

    t = field.type
    if pa.types.is_timestamp(t):
        fix = "cast it to pa.timestamp('us') (no zone) or pa.timestamp('us', tz='UTC')"
        why = "Iceberg stores timestamps in microseconds, without a zone or in UTC"
    else:
        fix, why = "cast it to a type Iceberg has (see the Iceberg spec's primitive types)", "Iceberg has no such type"
    return f"create table {table}: column {field.name!r} is {t}; {why}: {fix}; the table was not created"
