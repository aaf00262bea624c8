"""Typed configuration: frozen pydantic models, validated at construction, no reads at import."""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CatalogConfig", "PyIcebergCatalogConfig", "SqlCatalogConfig"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SqlCatalogConfig(_Frozen):
    """pyiceberg's SQL catalog: SQLite (embedded default) or PostgreSQL (production).

    Example:
        >>> SqlCatalogConfig(uri="sqlite:////tmp/home/catalog.db", warehouse="file:///tmp/home/warehouse").kind
        'sql'
    """

    kind: Literal["sql"] = "sql"
    name: str = "lakefeed"
    uri: str = Field(description="SQLAlchemy URL, e.g. sqlite:///home/catalog.db or postgresql+psycopg://...")
    warehouse: str = Field(description="Where table data goes: a local folder or an object-store URI")
    properties: dict[str, str] = Field(default_factory=dict, description="Extra pyiceberg catalog/FileIO properties")


class PyIcebergCatalogConfig(_Frozen):
    """Any catalog pyiceberg can load (REST, Glue, Hive, DynamoDB, ...), by its properties.

    Example:
        >>> cfg = PyIcebergCatalogConfig(name="prod", properties={"type": "rest", "uri": "http://rest:8181"})
        >>> cfg.properties["type"]
        'rest'
    """

    kind: Literal["pyiceberg"] = "pyiceberg"
    name: str = "lakefeed"
    properties: dict[str, str] = Field(description="Passed to pyiceberg.catalog.load_catalog(name, **properties)")


CatalogConfig: TypeAlias = Annotated[SqlCatalogConfig | PyIcebergCatalogConfig, Field(discriminator="kind")]
"""A catalog configuration, discriminated by ``kind``."""


class SqliteOnlineConfig(_Frozen):
    """The embedded online store: one SQLite file (WAL mode), no server.

    Example:
        >>> SqliteOnlineConfig(path="/tmp/home/online.db").kind
        'sqlite'
    """

    kind: Literal["sqlite"] = "sqlite"
    path: str = Field(description="The SQLite database file (created if missing)")
    timeout_s: float = Field(default=30.0, gt=0, description="How long a writer waits for another writer's lock")


class RedisOnlineConfig(_Frozen):
    """The production online store: Redis (standalone; not Redis Cluster).

    Example:
        >>> RedisOnlineConfig(url="redis://127.0.0.1:6379/0").prefix
        'lakefeed:'
    """

    kind: Literal["redis"] = "redis"
    url: str = Field(description="redis://[user:password@]host:port/db, rediss://... (TLS) or unix:///path.sock")
    prefix: str = Field(default="lakefeed:", description="Prefix of every key lakefeed writes (share a db safely)")
    socket_timeout_s: float = Field(default=30.0, gt=0, description="Per-command socket timeout")
    connect_timeout_s: float = Field(default=2.0, gt=0, description="Connection timeout")
    max_connections: int = Field(default=64, ge=1, description="Size of the connection pool")


OnlineStoreConfig: TypeAlias = Annotated[SqliteOnlineConfig | RedisOnlineConfig, Field(discriminator="kind")]
"""An online store configuration, discriminated by ``kind``."""

__all__ += ["OnlineStoreConfig", "RedisOnlineConfig", "SqliteOnlineConfig"]
