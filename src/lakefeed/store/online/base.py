"""The online store interface: the latest feature values per entity key, for serving.

A store holds feature groups (:class:`OnlineGroup`). Per group and entity key it keeps ONE record:
the feature values, the event time and (if the group has them) the created time and write order.
A write replaces a record only if its ``(event time, created time, write order)`` is greater than
or equal to the stored one, so an older event never overwrites a newer one and on a full tie the
later write wins. A batch is applied atomically: all of it or nothing.

Records are MessagePack arrays in the group's feature order behind a 29-byte header (format
version, schema fingerprint, times); see ``_codec``. Backends: :class:`~.sqlite.SqliteOnlineStore`
(embedded) and :class:`~.redis.RedisOnlineStore` (production).
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

import msgspec
import pyarrow as pa
import pyarrow.types as pt

from lakefeed.errors import ConfigError, OnlineStoreError, SchemaError
from lakefeed.store.online import _batch, _codec

__all__ = ["EntityKey", "KeyValue", "OnlineGroup", "OnlineStore"]

KeyValue: TypeAlias = int | str
"""One part of an entity key."""
EntityKey: TypeAlias = KeyValue | tuple[KeyValue, ...] | list[KeyValue] | Mapping[str, KeyValue]
"""An entity key: a value (one key column), values in key order, or a mapping key column -> value."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class OnlineGroup:
    """What an online store must know about a feature group to store and serve it.

    Args:
        name: The group's name (letters, digits, ``_ . -``; at most 128 characters).
        schema: Arrow schema of the group's rows: key columns, time columns and features. Every
            column that is not a key, time or write-order column is a feature, in schema order.
        keys: The entity key columns (integers or strings), in key order.
        event_time: The event time column (timestamp, date or integer).
        created_time: An optional created time column (same kinds), the first tie-breaker.
        write_order: An optional integer column (not necessarily in ``schema``) breaking the
            remaining ties: the greater value wins.
        ttl: Records whose event time is ``ttl`` or more before the read time are not served: a
            ``timedelta`` for timestamp and date event times, an ``int`` (same units) for integer
            ones. As in point-in-time joins: served while ``now - event_time < ttl``.

    Raises:
        ConfigError: A bad name, key list or ttl.
        SchemaError: A column is missing or has a type the online store cannot hold.

    Example:
        >>> import pyarrow as pa
        >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
        >>> OnlineGroup("user_stats", schema, keys=["user_id"], event_time="ts").features
        ('clicks',)
    """

    name: str
    schema: pa.Schema
    keys: Sequence[str]
    event_time: str
    created_time: str | None = None
    write_order: str | None = None
    ttl: timedelta | int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            msg = f"online feature group name {self.name!r} must match {_NAME.pattern}"
            raise ConfigError(msg)
        if not isinstance(self.schema, pa.Schema):
            msg = f"online feature group {self.name!r}: schema must be a pyarrow.Schema, got {type(self.schema)}"
            raise ConfigError(msg)
        if isinstance(self.keys, str) or not self.keys:
            msg = f"online feature group {self.name!r}: keys must be a non-empty list of columns, got {self.keys!r}"
            raise ConfigError(msg)
        object.__setattr__(self, "keys", tuple(self.keys))
        times = [c for c in (self.event_time, self.created_time) if c is not None]
        for column in [*self.keys, *times]:
            if column not in self.schema.names:
                msg = f"online feature group {self.name!r}: column {column!r} is not in the schema {self.schema.names}"
                raise SchemaError(msg)
        for key in self.keys:
            t = self.schema.field(key).type
            if not (pt.is_integer(t) or pt.is_string(t) or pt.is_large_string(t)):
                msg = f"online feature group {self.name!r}: key column {key!r} is {t}; keys must be integers or strings"
                raise SchemaError(msg)
        for column in times:
            t = self.schema.field(column).type
            if not (pt.is_timestamp(t) or pt.is_date(t) or pt.is_integer(t)):
                msg = f"online feature group {self.name!r}: time column {column!r} is {t}; use a timestamp, date, int"
                raise SchemaError(msg)
        if self.write_order is not None and self.write_order in self.schema.names:
            t = self.schema.field(self.write_order).type
            if not pt.is_integer(t):
                msg = f"online feature group {self.name!r}: write-order column {self.write_order!r} is {t}, not an int"
                raise SchemaError(msg)
        if self.ttl is not None:
            _check_ttl(self.name, self.ttl, self.schema.field(self.event_time).type)
        if not self.features:
            msg = f"online feature group {self.name!r}: the schema has no feature columns besides keys and times"
            raise SchemaError(msg)
        for name in self.features:
            t = self.schema.field(name).type
            if not _codec.is_supported(t.value_type if pt.is_dictionary(t) else t):
                msg = (
                    f"online feature group {self.name!r}: feature {name!r} is {t}; supported are numbers, booleans, "
                    "strings, binary, timestamps, dates, decimals, and lists/structs of numbers, booleans, strings"
                )
                raise SchemaError(msg)

    @cached_property
    def features(self) -> tuple[str, ...]:
        """The feature columns, in record order."""
        skip = {*self.keys, self.event_time, self.created_time, self.write_order}
        return tuple(n for n in self.schema.names if n not in skip)

    @cached_property
    def key_kinds(self) -> tuple[Literal["int", "str"], ...]:
        """``"int"`` or ``"str"`` per key column."""
        return tuple("int" if pt.is_integer(self.schema.field(k).type) else "str" for k in self.keys)

    @cached_property
    def fingerprint(self) -> int:
        """crc32 of what decides how records and keys are encoded: names and types (not ttl, nullability).

        Computed from type names, not from serialized Arrow metadata, so it is the same for every
        pyarrow version and ignores field metadata (e.g. Iceberg field ids).
        """
        schema = self.schema

        def typed(names: Sequence[str | None]) -> list[list[str] | None]:
            return [None if n is None else [n, _type_key(schema.field(n).type)] for n in names]

        layout = {
            "keys": typed(self.keys),
            "times": typed([self.event_time, self.created_time]),
            "write_order": self.write_order,
            "features": typed(self.features),
        }
        return zlib.crc32(json.dumps(layout, sort_keys=True).encode())

    def _layout_json(self) -> str:
        layout = {
            "keys": list(self.keys),
            "event_time": self.event_time,
            "created_time": self.created_time,
            "write_order": self.write_order,
            "schema": base64.b64encode(pa.schema(self.schema, metadata={}).serialize().to_pybytes()).decode(),
        }
        return json.dumps(layout, sort_keys=True)

    def to_json(self) -> str:
        """The group as JSON (stored by the backends; read back by :meth:`from_json`)."""
        ttl = {"us": self.ttl // timedelta(microseconds=1)} if isinstance(self.ttl, timedelta) else {"int": self.ttl}
        return json.dumps({"name": self.name, "layout": json.loads(self._layout_json()), "ttl": ttl, "version": 1})

    @classmethod
    def from_json(cls, text: str) -> OnlineGroup:
        """The inverse of :meth:`to_json`.

        Example:
            >>> import pyarrow as pa
            >>> g = OnlineGroup("g", pa.schema([("k", pa.string()), ("t", pa.date32()), ("x", pa.float64())]),
            ...                 keys=["k"], event_time="t")
            >>> OnlineGroup.from_json(g.to_json()) == g
            True
        """
        import pyarrow.ipc as ipc

        raw = json.loads(text)
        layout = raw["layout"]
        schema = ipc.read_schema(pa.py_buffer(base64.b64decode(layout["schema"])))
        stored_ttl = raw["ttl"]
        ttl = timedelta(microseconds=stored_ttl["us"]) if "us" in stored_ttl else stored_ttl["int"]
        return cls(
            raw["name"],
            schema,
            keys=layout["keys"],
            event_time=layout["event_time"],
            created_time=layout["created_time"],
            write_order=layout["write_order"],
            ttl=ttl,
        )


class OnlineStore(ABC):
    """The latest record per (feature group, entity key); one contract for every backend.

    Subclasses implement the storage hooks (``_load_spec``, ``_write``, ``_get`` ...); this class
    checks input, encodes and decodes records and applies TTLs, so every backend behaves alike.
    Reads are safe from several threads at once. Use a store as a context manager, or close it.

    Example:
        >>> import os, tempfile, pyarrow as pa
        >>> from datetime import datetime, timedelta
        >>> from lakefeed.store.online import OnlineGroup, open_online_store
        >>> schema = pa.schema([("user_id", pa.int64()), ("item", pa.string()), ("ts", pa.timestamp("us")),
        ...                     ("clicks", pa.int64())])
        >>> group = OnlineGroup("clicks", schema, keys=["user_id", "item"], event_time="ts", ttl=timedelta(days=1))
        >>> store = open_online_store(os.path.join(tempfile.mkdtemp(), "online.db"))
        >>> store.register_group(group)
        >>> day = datetime(2024, 1, 2)
        >>> store.write_batch("clicks", pa.table({"user_id": [7, 7], "item": ["a", "b"], "ts": [day, day],
        ...                                       "clicks": [3, 4]}, schema=schema))
        2
        >>> store.write_batch("clicks", pa.table({"user_id": [7], "item": ["a"], "ts": [day - timedelta(1)],
        ...                                       "clicks": [99]}, schema=schema))  # older: ignored
        0
        >>> store.read("clicks", [(7, "a"), {"user_id": 7, "item": "b"}, (8, "a")], now=day)
        [{'clicks': 3}, {'clicks': 4}, None]
        >>> store.read("clicks", [(7, "a")], now=day, with_times=True)
        [{'clicks': 3, 'ts': datetime.datetime(2024, 1, 2, 0, 0)}]
        >>> store.read("clicks", [(7, "a")], now=day + timedelta(days=1))  # a ttl old: expired
        [None]
        >>> store.count("clicks")
        2
        >>> store.delete_group("clicks"); store.groups()
        []
        >>> store.close()
    """

    def __init__(self) -> None:
        self._groups: dict[str, OnlineGroup] = {}
        self._closed = False
        self._decoder = msgspec.msgpack.Decoder()

    # -- groups -------------------------------------------------------------------------------

    def register_group(self, group: OnlineGroup) -> None:
        """Register a feature group (idempotent; a changed ttl is updated).

        Raises:
            SchemaError: The group exists with another layout (keys, times or feature schema) and
                holds records; call :meth:`delete_group` first, then materialize again.
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        self._check_open()
        stored = self._load_spec(group.name)
        if stored is not None:
            current = OnlineGroup.from_json(stored)
            if current == group:
                self._groups[group.name] = group
                return
            if current.fingerprint != group.fingerprint and self._count(current) > 0:
                msg = (
                    f"online feature group {group.name!r} is registered with another layout and holds records; "
                    "call delete_group() first, then write the group again"
                )
                raise SchemaError(msg)
        self._save_spec(group)
        self._groups[group.name] = group

    def group(self, name: str) -> OnlineGroup:
        """The registered group ``name``.

        Raises:
            OnlineStoreError: No such group is registered.
        """
        self._check_open()
        found = self._groups.get(name)
        if found is None:
            found = self._reload(name)
        return found

    def has_group(self, name: str) -> bool:
        """Whether a group ``name`` is registered (written to, or registered, by any client).

        Raises:
            OnlineStoreUnavailableError: The store cannot be reached.

        Example:
            >>> import tempfile, pyarrow as pa
            >>> from lakefeed.store.online import OnlineGroup, SqliteOnlineStore
            >>> store = SqliteOnlineStore(f"{tempfile.mkdtemp()}/online.db")
            >>> store.has_group("g")
            False
            >>> schema = pa.schema([("k", pa.int64()), ("ts", pa.timestamp("us")), ("x", pa.float64())])
            >>> store.register_group(OnlineGroup("g", schema, keys=["k"], event_time="ts"))
            >>> store.has_group("g")
            True
        """
        self._check_open()
        if name in self._groups:
            return True
        text = self._load_spec(name)
        if text is not None:
            self._groups[name] = OnlineGroup.from_json(text)  # the read that follows needs it
        return text is not None

    def groups(self) -> list[str]:
        """The names of the registered groups, sorted."""
        self._check_open()
        return sorted(self._list_specs())

    def _reload(self, name: str) -> OnlineGroup:
        text = self._load_spec(name)
        if text is None:
            self._groups.pop(name, None)
            msg = f"online feature group {name!r} is not registered in {self!r}; register_group() it first"
            raise OnlineStoreError(msg)
        found = OnlineGroup.from_json(text)
        self._groups[name] = found
        return found

    def delete_group(self, name: str) -> None:
        """Delete a group's records and registration (a no-op for an unknown group)."""
        self._check_open()
        self._groups.pop(name, None)
        self._delete(name)

    def count(self, name: str) -> int:
        """The number of records (entity keys) the group holds, expired ones included."""
        return self._count(self.group(name))

    # -- data ---------------------------------------------------------------------------------

    def write_batch(self, name: str, data: pa.Table | pa.RecordBatch) -> int:
        """Write a batch of rows atomically; per key, the latest row wins over the stored record.

        Args:
            name: A registered group.
            data: Rows with the group's key, time and feature columns (other columns are ignored;
                types are cast to the group's when lossless).

        Returns:
            How many keys got a new record (keys whose stored record is newer are not counted).

        Raises:
            SchemaError: A column is missing, of the wrong type, or has nulls in keys or event
                time; nothing is written.
            OnlineStoreError: The group is not registered, or the store refused the write.
            OnlineStoreUnavailableError: The store cannot be reached; the batch was applied
                entirely or not at all (retrying is safe).
        """
        group = self.group(name)
        batch = _batch.prepare(group, data)
        if batch.num_rows == 0:
            return 0
        return self._write(batch)

    def write_batches(self, name: str, batches: Iterable[pa.Table | pa.RecordBatch]) -> int:
        """Write batches one after another, each atomically and in order, as :meth:`write_batch` would.

        Stores that can overlap work do: Redis encodes the next batch while the server applies
        the one before. A failure leaves the batches before the failing one written, and it and
        those after it not.

        Returns:
            How many keys got a new record, over all batches.

        Raises:
            SchemaError, OnlineStoreError, OnlineStoreUnavailableError: As :meth:`write_batch`.

        Example:
            >>> import os, tempfile, pyarrow as pa
            >>> from datetime import datetime
            >>> from lakefeed.store.online import OnlineGroup, SqliteOnlineStore
            >>> schema = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us")), ("x", pa.float64())])
            >>> rows = [pa.table({"id": [i], "ts": [datetime(2024, 1, 1)], "x": [i / 2]}) for i in range(3)]
            >>> with SqliteOnlineStore(os.path.join(tempfile.mkdtemp(), "o.db")) as store:
            ...     store.register_group(OnlineGroup("g", schema, keys=["id"], event_time="ts"))
            ...     store.write_batches("g", rows)
            3
        """
        group = self.group(name)
        prepared = (_batch.prepare(group, data) for data in batches)
        return self._write_many(batch for batch in prepared if batch.num_rows)

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Many :meth:`write_batch` calls follow (a materialization): the store may defer upkeep meanwhile.

        Every batch stays atomic and visible to readers as soon as it is written; only
        housekeeping moves (SQLite copies its write-ahead log into the database in a background
        thread instead of inside the writes). Stores with nothing to defer do nothing.

        Example:
            >>> import os, tempfile, pyarrow as pa
            >>> from datetime import datetime
            >>> from lakefeed.store.online import OnlineGroup, SqliteOnlineStore
            >>> schema = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("us")), ("x", pa.float64())])
            >>> with SqliteOnlineStore(os.path.join(tempfile.mkdtemp(), "o.db")) as store:
            ...     store.register_group(OnlineGroup("g", schema, keys=["id"], event_time="ts"))
            ...     with store.bulk():
            ...         for i in range(3):
            ...             row = pa.table({"id": [i], "ts": [datetime(2024, 1, 1)], "x": [i / 2]})
            ...             _ = store.write_batch("g", row)
            ...     store.read("g", [2])
            [{'x': 1.0}]
        """
        yield

    def read(
        self,
        name: str,
        keys: Sequence[EntityKey],
        *,
        now: datetime | date | int | None = None,
        ttl: timedelta | int | None = None,
        with_times: bool = False,
    ) -> list[dict[str, Any] | None]:
        """The latest record of each key, as ``{feature: value}``; None if missing or expired.

        A record is served while ``now - event_time < ttl`` (one exactly ``ttl`` old has expired,
        as in point-in-time joins). Values are the Python values Arrow gives for the group's types
        (as ``to_pylist``).

        Args:
            name: A registered group.
            keys: Entity keys: values (one key column), tuples in key order, or mappings.
            now: The time to apply the TTL at (default: the current time; naive means UTC). An
                int for integer event times (needed there when a ttl applies).
            ttl: Overrides the group's ttl for this read.
            with_times: Also return the event time (and created time) under the group's
                time column names.

        Raises:
            SchemaError: A key has the wrong shape or type.
            OnlineStoreError: Unknown group, or a record lakefeed cannot decode.
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        group = self.group(name)
        encoded = _batch.encode_keys(group, keys)
        blobs = self._get(group, encoded) if encoded else []
        ttl = group.ttl if ttl is None else ttl
        cutoff = None if ttl is None else _cutoff(group, now, ttl)
        floor = _codec.MISSING - 1 if cutoff is None else cutoff  # below every int64: nothing expires
        out: list[dict[str, Any] | None] = []
        append = out.append
        # The common record (this format and layout, no conversions, no times asked) is decoded
        # inline; anything else, errors included, goes through _decode.
        plain = not with_times and not _converters(group)
        names, fingerprint, decode = group.features, group.fingerprint, self._decoder.decode
        width, header, version = len(names), _codec.HEADER_SIZE, _codec.FORMAT_VERSION
        leading = _codec.LEADING.unpack_from
        for key, blob in zip(encoded, blobs, strict=True):
            if blob is None:
                append(None)
                continue
            if plain and len(blob) > header:
                stored_version, stored, event = leading(blob)
                if stored_version == version and stored == fingerprint:
                    if event <= floor:
                        append(None)
                        continue
                    try:
                        values = decode(memoryview(blob)[header:])
                    except msgspec.DecodeError:
                        values = None  # _decode says what is wrong
                    if type(values) is list and len(values) == width:
                        append(dict(zip(names, values, strict=False)))  # lengths checked above
                        continue
            append(self._decode(group, key, blob, cutoff, with_times))
        return out

    def _decode(
        self, group: OnlineGroup, key: bytes, blob: bytes, cutoff: int | None, with_times: bool
    ) -> dict[str, Any] | None:
        if len(blob) < _codec.HEADER_SIZE or blob[0] != _codec.FORMAT_VERSION:
            version = blob[0] if blob else None
            msg = (
                f"online feature group {group.name!r}, key {key.decode(errors='replace')!r}: record format "
                f"version {version} is not {_codec.FORMAT_VERSION}; upgrade lakefeed or rematerialize the group"
            )
            raise OnlineStoreError(msg)
        _, fingerprint, event, created, _order = _codec.HEADER.unpack_from(blob)
        if fingerprint != group.fingerprint:
            group = self._reload(group.name)
            if fingerprint != group.fingerprint:
                msg = (
                    f"online feature group {group.name!r}, key {key.decode(errors='replace')!r}: the record was "
                    "written for another schema of the group; rematerialize it"
                )
                raise OnlineStoreError(msg)
        if cutoff is not None and event <= cutoff:
            return None
        try:
            values = self._decoder.decode(memoryview(blob)[_codec.HEADER_SIZE :])
        except msgspec.DecodeError as exc:
            msg = f"online feature group {group.name!r}, key {key.decode(errors='replace')!r}: corrupt record: {exc}"
            raise OnlineStoreError(msg) from exc
        names = group.features
        if not isinstance(values, list) or len(values) != len(names):
            msg = f"online feature group {group.name!r}, key {key.decode(errors='replace')!r}: corrupt record"
            raise OnlineStoreError(msg)
        for i, convert in _converters(group):
            values[i] = convert(values[i])
        record = dict(zip(names, values, strict=True))
        if with_times:
            record[group.event_time] = _codec.from_micros(event, group.schema.field(group.event_time).type)
            if group.created_time is not None:
                t = group.schema.field(group.created_time).type
                record[group.created_time] = None if created == _codec.MISSING else _codec.from_micros(created, t)
        return record

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release connections; the store cannot be used afterwards (closing twice is fine)."""
        if not self._closed:
            self._closed = True
            self._close()

    def _check_open(self) -> None:
        if self._closed:
            msg = f"{self!r} is closed"
            raise OnlineStoreError(msg)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- backend hooks ------------------------------------------------------------------------

    @abstractmethod
    def _load_spec(self, name: str) -> str | None:
        """The stored JSON of group ``name``, or None."""

    @abstractmethod
    def _list_specs(self) -> list[str]:
        """The names of the stored groups."""

    @abstractmethod
    def _save_spec(self, group: OnlineGroup) -> None:
        """Store (or replace) the group's JSON."""

    @abstractmethod
    def _write(self, batch: _batch.PreparedBatch) -> int:
        """Apply a prepared batch (distinct keys) atomically; return how many keys were written."""

    def _write_many(self, batches: Iterator[_batch.PreparedBatch]) -> int:
        """Apply prepared batches in order, each atomically; the total :meth:`_write` returned."""
        return sum(self._write(batch) for batch in batches)

    @abstractmethod
    def _get(self, group: OnlineGroup, keys: list[bytes]) -> list[bytes | None]:
        """The stored records of ``keys`` (None where missing), in order."""

    @abstractmethod
    def _count(self, group: OnlineGroup) -> int:
        """The number of records of the group."""

    @abstractmethod
    def _delete(self, name: str) -> None:
        """Remove the group's records and registration."""

    @abstractmethod
    def _close(self) -> None:
        """Release resources."""


def _check_ttl(name: str, ttl: object, event_type: pa.DataType) -> None:
    integer = pt.is_integer(event_type)
    if isinstance(ttl, bool) or not isinstance(ttl, int if integer else timedelta):
        kind = "an int (same units)" if integer else "a timedelta"
        msg = f"online feature group {name!r} has {event_type} event times, so its ttl must be {kind}, got {ttl!r}"
        raise ConfigError(msg)
    if ttl <= (0 if integer else timedelta(0)):  # type: ignore[operator]
        msg = f"online feature group {name!r}: ttl must be positive, got {ttl!r}; use None for no expiry"
        raise ConfigError(msg)


def _cutoff(group: OnlineGroup, now: datetime | date | int | None, ttl: timedelta | int) -> int:
    """Records with an event time at or before this (in stored units) have expired."""
    event_type = group.schema.field(group.event_time).type
    _check_ttl(group.name, ttl, event_type)
    if isinstance(ttl, int):
        if isinstance(now, bool) or not isinstance(now, int):
            msg = f"online feature group {group.name!r} has integer event times: pass now= as an int to apply a ttl"
            raise ConfigError(msg)
        return now - ttl
    if isinstance(now, int):
        msg = f"online feature group {group.name!r} has {event_type} event times: now must be a datetime or date"
        raise ConfigError(msg)
    return _codec.now_micros(now) - ttl // timedelta(microseconds=1)


def _type_key(t: pa.DataType) -> str:
    """A stable name of an Arrow type (dictionaries as their values; no field metadata)."""
    if pt.is_dictionary(t):
        return _type_key(t.value_type)
    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        size = f"[{t.list_size}]" if pt.is_fixed_size_list(t) else ""
        kind = "large_list" if pt.is_large_list(t) else "list"
        return f"{kind}{size}<{_type_key(t.value_type)}>"
    if pt.is_struct(t):
        fields = ", ".join(f"{t.field(i).name}: {_type_key(t.field(i).type)}" for i in range(t.num_fields))
        return f"struct<{fields}>"
    return str(t)


_CONVERTERS: dict[int, list[tuple[int, Any]]] = {}


def _converters(group: OnlineGroup) -> list[tuple[int, Any]]:
    """(feature position, converter) for features decoded as something else than their Python value."""
    found = _CONVERTERS.get(group.fingerprint)
    if found is None:
        found = []
        for i, name in enumerate(group.features):
            t = group.schema.field(name).type
            convert = _codec.value_converter(t.value_type if pt.is_dictionary(t) else t)
            if convert is not None:
                found.append((i, convert))
        _CONVERTERS[group.fingerprint] = found
    return found
