"""Checking a write batch against its group and turning it into keys, times and records (private)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pt

from lakefeed.errors import SchemaError
from lakefeed.store.online import _codec
from lakefeed.store.online._codec import Arr

if TYPE_CHECKING:
    from lakefeed.store.online.base import EntityKey, OnlineGroup

__all__ = ["TIMES", "PreparedBatch", "encode_key", "encode_keys", "newer_or_equal", "prepare"]

SLICE_ROWS = 16384
"""Rows encoded at a time: bounds the memory of one encoding step."""
TIMES = np.dtype([("e", ">i8"), ("c", ">i8"), ("o", ">i8")])
"""(event, created, order) of a record, big-endian."""


@dataclass
class PreparedBatch:
    """A checked batch: one row per distinct key (the latest), ready to encode."""

    group: OnlineGroup
    keys: Arr
    key_columns: list[Arr]
    event: np.ndarray[Any, Any]
    created: np.ndarray[Any, Any]
    order: np.ndarray[Any, Any]
    features: list[Arr]

    @property
    def num_rows(self) -> int:
        """Distinct keys in the batch."""
        return len(self.keys)

    def times(self, rows: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """(event, created, order) per row as a structured array, optionally for some rows only."""
        out = np.empty(self.num_rows if rows is None else len(rows), dtype=TIMES)
        out["e"] = self.event if rows is None else self.event[rows]
        out["c"] = self.created if rows is None else self.created[rows]
        out["o"] = self.order if rows is None else self.order[rows]
        return out

    def record_parts(self, start: int, stop: int, rows: np.ndarray[Any, Any] | None = None) -> list[_codec.Part]:
        """Encoded records of rows ``start:stop`` (of ``rows`` when given) as parts (``_codec.assemble``)."""
        idx = np.arange(start, stop) if rows is None else rows[start:stop]
        take = None if rows is None else idx
        parts: list[_codec.Part] = [
            _codec.record_header(
                self.group.fingerprint, self.event[idx], self.created[idx], self.order[idx], len(self.features)
            )
        ]
        for arr in self.features:
            parts.extend(_codec.encode_column(arr.slice(start, stop - start) if take is None else arr.take(take)))
        return parts

    def records(self, start: int, stop: int, rows: np.ndarray[Any, Any] | None = None) -> Arr:
        """Encoded records of rows ``start:stop`` (of ``rows`` when given) as a binary array."""
        return _codec.assemble(self.record_parts(start, stop, rows))

    def slices(self, rows: np.ndarray[Any, Any] | None = None) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` ranges of at most SLICE_ROWS rows over the batch (or over ``rows``)."""
        n = self.num_rows if rows is None else len(rows)
        for start in range(0, n, SLICE_ROWS):
            yield start, min(start + SLICE_ROWS, n)


def newer_or_equal(new: np.ndarray[Any, Any], old: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Row-wise ``(event, created, order) >= old`` for two TIMES arrays."""
    ne, nc, no = new["e"], new["c"], new["o"]
    oe, oc, oo = old["e"], old["c"], old["o"]
    result: np.ndarray[Any, Any] = (ne > oe) | ((ne == oe) & ((nc > oc) | ((nc == oc) & (no >= oo))))
    return result


def _column(data: pa.Table, name: str) -> Arr:
    column = data.column(name)
    # one chunk (a record batch's column) as it is: combine_chunks would copy it
    if column.num_chunks == 1:
        return cast("Arr", column.chunk(0))  # an Array (pyarrow's stubs say ChunkedArray)
    combined: Arr = column.combine_chunks()
    return combined


def _family(t: pa.DataType) -> str:
    if pt.is_dictionary(t):
        return _family(t.value_type)
    if pt.is_boolean(t):
        return "bool"
    if pt.is_integer(t) or pt.is_floating(t) or pt.is_decimal(t):
        return "number"
    if pt.is_string(t) or pt.is_large_string(t):
        return "string"
    if pt.is_binary(t) or pt.is_large_binary(t) or pt.is_fixed_size_binary(t):
        return "binary"
    if pt.is_timestamp(t):
        return "timestamp"
    if pt.is_date(t):
        return "date"
    if pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t):
        return "list"
    return str(t)


def _conform(group: OnlineGroup, name: str, arr: Arr, target: pa.DataType) -> Arr:
    where = f"write to online feature group {group.name!r}: column {name!r}"
    if pt.is_dictionary(arr.type):
        arr = arr.dictionary_decode()  # type: ignore[attr-defined]
    if arr.type == target:
        return arr
    if _family(arr.type) != _family(target):
        msg = f"{where} is {arr.type}, expected {target}; cast the column first"
        raise SchemaError(msg)
    try:
        return arr.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        msg = f"{where} is {arr.type} and does not fit {target}: {exc}"
        raise SchemaError(msg) from exc


def prepare(group: OnlineGroup, data: pa.Table | pa.RecordBatch) -> PreparedBatch:
    """Check ``data`` against ``group`` and keep the latest row per key; nothing is written.

    Raises:
        SchemaError: A column is missing, has an incompatible type, or holds nulls where none
            are allowed (keys, event time, non-nullable features).
    """
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if not isinstance(data, pa.Table):
        msg = (
            f"write to online feature group {group.name!r}: expected a pyarrow Table or RecordBatch, "
            f"got {type(data).__name__}"
        )
        raise SchemaError(msg)
    schema = group.schema
    needed = [*group.keys, group.event_time, *group.features]
    needed += [c for c in (group.created_time, group.write_order) if c is not None]
    missing = [c for c in needed if c not in data.column_names]
    if missing:
        msg = (
            f"write to online feature group {group.name!r}: missing column(s) {missing}; "
            f"the batch has {data.column_names}"
        )
        raise SchemaError(msg)

    def checked(name: str, target: pa.DataType, *, nulls: bool) -> Arr:
        if pt.is_dictionary(target):
            target = target.value_type
        arr = _conform(group, name, _column(data, name), target)
        if not nulls and arr.null_count:
            msg = f"write to online feature group {group.name!r}: column {name!r} has {arr.null_count} null(s)"
            raise SchemaError(msg)
        return arr

    keys = [checked(k, schema.field(k).type, nulls=False) for k in group.keys]
    event = _times(group, group.event_time, checked(group.event_time, schema.field(group.event_time).type, nulls=False))
    n = data.num_rows
    created = _optional_times(group, group.created_time, n, checked)
    order = _optional_times(group, group.write_order, n, checked)
    features = [checked(f, schema.field(f).type, nulls=schema.field(f).nullable) for f in group.features]
    key_text = _codec.key_strings(keys)
    batch = PreparedBatch(group, key_text, keys, event, created, order, features)
    return _latest_per_key(batch)


def _optional_times(group: OnlineGroup, name: str | None, n: int, checked: Callable[..., Arr]) -> np.ndarray[Any, Any]:
    """Created times or write orders as int64 (MISSING where null or when the group has none)."""
    if name is None:
        return np.full(n, _codec.MISSING, dtype=np.int64)
    target = group.schema.field(name).type if name in group.schema.names else pa.int64()
    arr = checked(name, target, nulls=True)
    out = _times(group, name, arr)
    if arr.null_count:
        out[~arr.is_valid().to_numpy(zero_copy_only=False)] = _codec.MISSING
    return out


def _times(group: OnlineGroup, name: str, arr: Arr) -> np.ndarray[Any, Any]:
    """An event or created time column as stored in record headers (microseconds, exactly).

    Raises:
        SchemaError: A nanosecond time that is not a whole microsecond (it would be cut: ties
            between times of one microsecond, early expiry, pre-1970 times moved).
    """
    bad = _codec.sub_micro(arr)
    if bad is not None:
        msg = (
            f"write to online feature group {group.name!r}: column {name!r} holds nanosecond time {bad}, which is "
            "not a whole microsecond; the online store orders and expires records by the microsecond, so it would "
            "be cut (and could lose to an older time of the same microsecond): floor the column to microseconds "
            "first, e.g. pyarrow.compute.floor_temporal(column, unit='microsecond'), or store it as timestamp('us')"
        )
        raise SchemaError(msg)
    return _codec.to_micros(arr)


def _latest_per_key(batch: PreparedBatch) -> PreparedBatch:
    """Keep, for each key, the row with the greatest (event, created, order), the last on ties."""
    n = batch.num_rows
    if n < 2 or _distinct(batch):
        return batch
    encoded: Any = batch.keys.dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    ranked = np.lexsort((np.arange(n), batch.order, batch.created, batch.event, codes))
    last = np.ones(n, dtype=bool)
    last[:-1] = codes[ranked[:-1]] != codes[ranked[1:]]
    keep = np.sort(ranked[last])
    take = keep
    return PreparedBatch(
        batch.group,
        batch.keys.take(take),
        [k.take(take) for k in batch.key_columns],
        batch.event[keep],
        batch.created[keep],
        batch.order[keep],
        [f.take(take) for f in batch.features],
    )


def _distinct(batch: PreparedBatch) -> bool:
    """Whether every key of the batch is different (for one integer key column, by sorting: faster)."""
    if len(batch.key_columns) == 1 and pt.is_integer(batch.key_columns[0].type):
        ordered = np.sort(batch.key_columns[0].to_numpy(zero_copy_only=False))
        return not bool((ordered[1:] == ordered[:-1]).any())
    return bool(pc.count_distinct(batch.keys).as_py() == batch.num_rows)


def encode_keys(group: OnlineGroup, keys: Sequence[EntityKey]) -> list[bytes]:
    """Many entity keys as stored (see :func:`encode_key`), plain ints of a one-int-key group in one pass.

    Raises:
        SchemaError: A key has the wrong number of parts or a part of the wrong type.
    """
    if len(group.keys) == 1 and group.key_kinds[0] == "int":
        return [b"%d" % k if type(k) is int else encode_key(group, k) for k in keys]
    return [encode_key(group, k) for k in keys]


def encode_key(group: OnlineGroup, key: EntityKey) -> bytes:
    """One entity key (a value, a tuple/list of values in key order, or a mapping) as stored.

    Raises:
        SchemaError: The key has the wrong number of parts or a part of the wrong type.
    """
    names = group.keys
    if len(names) == 1:
        kind = group.key_kinds[0]
        single = key[0] if type(key) is tuple and len(key) == 1 else key
        if (kind == "int" and type(single) is int) or (kind == "str" and type(single) is str):
            return str(single).encode()
    if isinstance(key, Mapping):
        try:
            values: Sequence[object] = [key[k] for k in names]
        except KeyError as exc:
            msg = f"online feature group {group.name!r}: key {dict(key)!r} lacks {exc.args[0]!r}; keys: {list(names)}"
            raise SchemaError(msg) from None
    elif isinstance(key, tuple | list):
        values = key
    else:
        values = (key,)
    if len(values) != len(names):
        msg = f"online feature group {group.name!r}: key {key!r} has {len(values)} part(s), expected {list(names)}"
        raise SchemaError(msg)
    kinds = group.key_kinds
    out: list[int | str] = []
    for value, kind, name in zip(values, kinds, names, strict=True):
        if kind == "int":
            if type(value) is not int:
                if isinstance(value, bool) or not hasattr(value, "__index__"):
                    msg = f"online feature group {group.name!r}: key {name!r} is an integer, got {value!r}"
                    raise SchemaError(msg)
                value = value.__index__()
        elif not isinstance(value, str):
            msg = f"online feature group {group.name!r}: key {name!r} is a string, got {value!r}"
            raise SchemaError(msg)
        out.append(value)
    return _codec.key_string(out, len(names) > 1)
