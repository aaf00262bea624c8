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
