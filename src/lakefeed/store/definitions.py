"""What the registry keeps: feature group, feature view and training dataset definitions.

Definitions are frozen pydantic models, stored as JSON. A feature group's Arrow schema is kept
as Arrow IPC bytes (base64), so every type round-trips exactly (time zones, decimals, lists).
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from lakefeed.errors import ConfigError

if TYPE_CHECKING:
    from lakefeed.expr import Expr

__all__ = [
    "FeatureGroupSpec",
    "FeatureRef",
    "FeatureViewSpec",
    "TrainingDatasetSpec",
    "WRITE_COLUMN",
    "insert_rows",
    "parse_feature_refs",
    "schema_from_b64",
    "schema_to_b64",
]

WRITE_COLUMN = "_lf_write"
"""Hidden column of every feature group: the write order (insert number << 32 | row in the insert)."""


def insert_rows(write: int) -> Expr:
    """A filter matching exactly the rows of insert ``write`` (its range of :data:`WRITE_COLUMN`).

    Example:
        >>> str(insert_rows(2))
        '((_lf_write >= 8589934592) & (_lf_write < 12884901888))'
    """
    from lakefeed.expr import col

    return (col(WRITE_COLUMN) >= write << 32) & (col(WRITE_COLUMN) < (write + 1) << 32)


SourceFormat = Literal["iceberg", "paimon", "delta", "parquet"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def schema_to_b64(schema: pa.Schema) -> str:
    """An Arrow schema as base64 IPC bytes."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_from_b64(text: str) -> pa.Schema:
    """The inverse of :func:`schema_to_b64`."""
    import pyarrow.ipc as ipc

    return ipc.read_schema(pa.py_buffer(base64.b64decode(text)))


class FeatureGroupSpec(_Frozen):
    """A feature group: a table of feature rows with keys and an event time.

    Example:
        >>> import pyarrow as pa
        >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
        >>> spec = FeatureGroupSpec(name="user_stats", keys=["user_id"], event_time="ts", table="features.user_stats",
        ...                         schema_b64=schema_to_b64(schema))
        >>> spec.features
        ['clicks']
    """

    name: str
    keys: list[str]
    event_time: str
    created_time: str | None = None
    ttl_seconds: float | None = None
    ttl_ticks: int | None = None
    """The TTL of a group with integer event times, in the times' own units (``ttl_seconds`` is None)."""
    description: str = ""
    online: bool = True
    table: str = Field(description="The catalog name of the group's Iceberg table, or the source URI when registered")
    source_format: SourceFormat = "iceberg"
    read_only: bool = False
    schema_b64: str
    version: int = 1

    @property
    def arrow_schema(self) -> pa.Schema:
        """The group's Arrow schema (keys, times and features; not the hidden write column)."""
        return schema_from_b64(self.schema_b64)

    @property
    def features(self) -> list[str]:
        """The feature columns: every column but the keys and times."""
        skip = {*self.keys, self.event_time, *([self.created_time] if self.created_time else []), WRITE_COLUMN}
        return [n for n in self.arrow_schema.names if n not in skip]

    @property
    def ttl(self) -> timedelta | int | None:
        """The time-to-live of a feature row (None: forever; an int for integer event times)."""
        if self.ttl_ticks is not None:
            return self.ttl_ticks
        return timedelta(seconds=self.ttl_seconds) if self.ttl_seconds is not None else None


class FeatureRef(_Frozen):
    """One feature of a view: ``group.feature``, served under ``name``."""

    group: str
    feature: str
    name: str


class FeatureViewSpec(_Frozen):
    """A feature view: features picked from groups, and an optional transform pipeline spec."""

    name: str
    features: list[FeatureRef]
    transform: str | None = Field(default=None, description="A lakefeed transforms Pipeline spec, as JSON")
    description: str = ""
    version: int = 1

    @property
    def groups(self) -> list[str]:
        """The groups the view reads, in first-use order."""
        return list(dict.fromkeys(f.group for f in self.features))


class TrainingDatasetSpec(_Frozen):
    """A saved training dataset: its table and the group snapshots it was joined from."""

    name: str
    view: str
    table: str
    snapshots: dict[str, int | None]
    spine_time: str
    label: str | None = None
    transform: str | None = None
    rows: int
    snapshot_id: int | None = None
    """The dataset table's snapshot (None for an empty dataset, and in specs saved before it was recorded)."""
    version: int = 1


def parse_feature_refs(features: list[str], groups: dict[str, FeatureGroupSpec]) -> list[FeatureRef]:
    """Resolve ``"group.feature"`` and ``"group.*"`` references against the groups' specs.

    Raises:
        ConfigError: A malformed reference, an unknown group or feature, two features that
            would be served under the same name, or a feature named like a key of the view.
    """
    refs: list[FeatureRef] = []
    for text in features:
        if not isinstance(text, str) or text.count(".") != 1:
            msg = f"feature reference {text!r} must be 'group.feature' or 'group.*'"
            raise ConfigError(msg)
        group, feature = text.split(".")
        spec = groups.get(group)
        if spec is None:
            msg = f"feature reference {text!r}: no feature group {group!r}; groups are {sorted(groups)}"
            raise ConfigError(msg)
        names = spec.features if feature == "*" else [feature]
        for name in names:
            if name not in spec.features:
                msg = f"feature reference {text!r}: group {group!r} has no feature {name!r}; it has {spec.features}"
                raise ConfigError(msg)
            refs.append(FeatureRef(group=group, feature=name, name=name))
    seen: dict[str, str] = {}
    for ref in refs:
        other = seen.get(ref.name)
        if other is not None:
            msg = (
                f"features {other}.{ref.name} and {ref.group}.{ref.name} would both be served as {ref.name!r}; "
                "pick one (or rename one of the columns)"
            )
            raise ConfigError(msg)
        seen[ref.name] = ref.group
    used = {ref.group for ref in refs}
    keys = {key: name for name in sorted(used) for key in groups[name].keys}
    for ref in refs:
        if ref.name in keys:
            msg = (
                f"feature {ref.group}.{ref.name} has the name of a key of feature group {keys[ref.name]!r}; served "
                "next to the entity's keys it would replace one: leave it out of the view, or rename the column"
            )
            raise ConfigError(msg)
    return refs
