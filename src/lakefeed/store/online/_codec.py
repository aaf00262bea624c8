r"""Vectorised encoding of online records and entity keys, shared by every online store (private).

A record is one entity's feature values, stored as one value::

    byte 0       format version (FORMAT_VERSION)
    bytes 1-4    schema fingerprint of the group (crc32, big-endian unsigned)
    bytes 5-12   event time (int64 big-endian; microseconds since the epoch for timestamps and dates;
                 nanosecond times must be whole microseconds, see sub_micro)
    bytes 13-20  created time (int64 big-endian; MISSING when the group has none)
    bytes 21-28  write order (int64 big-endian; MISSING when the group has none)
    bytes 29-    a MessagePack array (array32) of the feature values, in the group's feature order

The 29-byte header layout is frozen for every format version (only the payload may change), so
stores compare times without decoding values. Records are built from Arrow columns in bulk: each
column becomes one or two "parts" per row (a MessagePack type byte + fixed-width big-endian value,
made with numpy; or a length header, then the Arrow string bytes), and one Arrow ``take`` lays the
parts out row by row (:func:`assemble`). Integers are always written as int64/uint64 and strings as
str32 (valid, if not minimal, MessagePack). Nested and decimal columns fall back to msgspec per value.

Entity keys are text: integers in decimal, strings as they are; parts of composite keys joined by
``|`` with ``\`` and ``|`` inside strings escaped by a backslash.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pt

__all__ = [
    "BINARY",
    "FORMAT_VERSION",
    "HEADER",
    "HEADER_SIZE",
    "LEADING",
    "MISSING",
    "Arr",
    "Part",
    "assemble",
    "buffer_of",
    "constant",
    "decimal",
    "encode_column",
    "from_micros",
    "is_supported",
    "key_hashes",
    "key_string",
    "key_strings",
    "now_micros",
    "part_lengths",
    "record_header",
    "sub_micro",
    "to_micros",
    "value_converter",
]

Arr: TypeAlias = "pa.Array[Any]"
Part: TypeAlias = "pa.Array[Any] | np.ndarray[Any, Any]"
"""One piece of every row: a binary array, or an ``(n, w)`` uint8 matrix of fixed-width bytes."""

FORMAT_VERSION = 1
HEADER = struct.Struct(">BIqqq")
HEADER_SIZE = HEADER.size
LEADING = struct.Struct(">BIq")
"""The first fields of :data:`HEADER`: format version, layout fingerprint, event time."""
MISSING = -(2**63)
"""Created time or write order of a record that has none (sorts before every real value)."""
BINARY = pa.large_binary()
_NIL = b"\xc0"
_EMPTY = pa.scalar(b"", BINARY)
"""The separator of :func:`_row_concat`: none."""
_US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = 719_163
_ENCODER = msgspec.msgpack.Encoder()
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _buffer(data: Any) -> pa.Buffer:
    return pa.py_buffer(data)


def _ints(buffer: Any) -> np.ndarray[Any, Any]:
    return np.frombuffer(buffer, dtype=np.int64)


def _bytes(buffer: Any) -> np.ndarray[Any, Any]:
    return np.frombuffer(buffer, dtype=np.uint8)


def _lengths(arr: Arr) -> np.ndarray[Any, Any]:
    lengths: Any = pc.binary_length(arr.cast(BINARY))  # type: ignore[call-overload]
    return np.asarray(lengths.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


# -- assembling rows ------------------------------------------------------------------------------


def fixed_width(matrix: np.ndarray[Any, Any]) -> Arr:
    """An ``(n, w)`` uint8 matrix as a binary array of ``n`` values of ``w`` bytes."""
    n, width = matrix.shape
    data = _buffer(np.ascontiguousarray(matrix, dtype=np.uint8))
    offsets = _buffer(np.arange(n + 1, dtype=np.int64) * width)  # the matrix's rows, not copied
    out: Arr = pa.LargeBinaryArray.from_buffers(BINARY, n, [None, offsets, data])
    return out


def constant(value: bytes, n: int) -> np.ndarray[Any, Any]:
    """A part of ``n`` copies of ``value`` (an ``(n, len(value))`` matrix, not copied)."""
    return np.broadcast_to(np.frombuffer(value, dtype=np.uint8), (n, len(value)))


def decimal(values: np.ndarray[Any, Any]) -> Part:
    """Non-negative integers in ASCII decimal, as a part: a matrix when all have as many digits.

    A fixed-width part merges with its fixed-width neighbours (the ``$`` before a Redis bulk
    string's length and the CRLF after it), so rows are assembled from fewer pieces.

    Example:
        >>> import numpy as np
        >>> bytes(decimal(np.array([1063, 1071]))[1]), decimal(np.array([9, 10])).to_pylist()
        (b'1071', ['9', '10'])
    """
    if len(values) == 0:
        return pa.array([], pa.string())
    lo, hi = int(values.min()), int(values.max())
    digits = len(str(hi))
    if lo < 0 or len(str(lo)) != digits:
        return pa.array(values, pa.int64()).cast(pa.string())
    powers = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    out: np.ndarray[Any, Any] = (np.asarray(values, dtype=np.int64)[:, None] // powers % 10 + 48).astype(np.uint8)
    return out


def part_lengths(parts: Sequence[Part], n: int) -> np.ndarray[Any, Any]:
    """The byte length of each row of ``assemble(parts)``, without assembling."""
    total = np.zeros(n, dtype=np.int64)
    for part in parts:
        total += part.shape[1] if isinstance(part, np.ndarray) else _lengths(part)
    return total


def _row_concat(parts: Sequence[Arr]) -> Arr:
    """Row i of the result is parts[0][i] + parts[1][i] + ... (binary arrays of equal length, no nulls).

    One pass of Arrow's element-wise join with an empty separator: each row's bytes are copied
    once, into one new buffer.
    """
    if len(parts) == 1:
        return parts[0]
    out: Arr = pc.binary_join_element_wise(*(p.cast(BINARY) for p in parts), _EMPTY)  # type: ignore[call-overload]
    return out


def assemble(parts: Sequence[Part]) -> Arr:
    """Rows of concatenated parts as one binary array (neighbouring matrices merged first)."""
    merged: list[Arr] = []
    pending: list[np.ndarray[Any, Any]] = []
    for part in parts:
        if isinstance(part, np.ndarray):
            pending.append(part)
            continue
        if pending:
            merged.append(fixed_width(np.hstack(pending)))
            pending = []
        merged.append(part)
    if pending:
        merged.append(fixed_width(np.hstack(pending)))
    if not merged or len(merged[0]) == 0:
        return pa.array([], BINARY)
    return _row_concat(merged)


def buffer_of(arr: Arr) -> memoryview:
    """The data bytes of a binary array (the concatenation of its values), without copying."""
    offsets = _ints(arr.buffers()[1])[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if data is None or len(arr) == 0:
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


# -- encoding columns -----------------------------------------------------------------------------


def _numbers(values: Arr) -> np.ndarray[Any, Any]:
    """A primitive array as an ``(n, w)`` uint8 matrix of MessagePack values (type byte + big-endian)."""
    t = values.type
    if pt.is_boolean(t):
        flags = values.fill_null(False).to_numpy(zero_copy_only=False)
        return np.where(flags, np.uint8(0xC3), np.uint8(0xC2)).astype(np.uint8).reshape(-1, 1)
    if pt.is_floating(t):
        tag, be = (0xCB, ">f8") if t.bit_width == 64 else (0xCA, ">f4")
        values = values.cast(pa.float64() if t.bit_width == 64 else pa.float32())
    elif pt.is_unsigned_integer(t) and t.bit_width == 64:
        tag, be = 0xCF, ">u8"
    else:
        tag, be = 0xD3, ">i8"
        values = values.cast(pa.int64())
    raw = values.fill_null(0).to_numpy(zero_copy_only=False).astype(be)
    width = raw.dtype.itemsize
    out = np.empty((len(raw), width + 1), dtype=np.uint8)
    out[:, 0] = tag
    out[:, 1:] = raw.view(np.uint8).reshape(-1, width)
    return out


def _int64s(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.empty((len(values), 9), dtype=np.uint8)
    out[:, 0] = 0xD3
    out[:, 1:] = values.astype(">i8").view(np.uint8).reshape(-1, 8)
    return out


def _length_headers(tag: int, lengths: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.empty((len(lengths), 5), dtype=np.uint8)
    out[:, 0] = tag
    out[:, 1:] = lengths.astype(">u4").view(np.uint8).reshape(-1, 4)
    return out


def _nullable(arr: Arr, matrix: np.ndarray[Any, Any]) -> Part:
    """``matrix`` with the null rows of ``arr`` replaced by MessagePack nil."""
    if arr.null_count == 0:
        return matrix
    part: Arr = pc.if_else(arr.is_valid(), fixed_width(matrix), pa.scalar(_NIL, BINARY))
    return part


def _is_number(t: pa.DataType) -> bool:
    return bool(pt.is_boolean(t) or pt.is_integer(t) or pt.is_floating(t))


def _is_bytes(t: pa.DataType) -> bool:
    return bool(
        pt.is_string(t)
        or pt.is_large_string(t)
        or pt.is_binary(t)
        or pt.is_large_binary(t)
        or pt.is_fixed_size_binary(t)
    )


def _is_list(t: pa.DataType) -> bool:
    return bool(pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t))


def _is_native(t: pa.DataType) -> bool:
    """Types whose Python values msgspec encodes and decodes back to the same Python value."""
    if _is_number(t) or _is_bytes(t):
        return True
    if _is_list(t):
        return _is_native(t.value_type)  # type: ignore[attr-defined]
    if pt.is_struct(t):
        return all(_is_native(t.field(i).type) for i in range(t.num_fields))
    return False


def is_supported(t: pa.DataType) -> bool:
    """Whether a feature of this type can be stored online."""
    return bool(_is_native(t) or pt.is_timestamp(t) or pt.is_date(t) or pt.is_decimal(t))


def encode_column(arr: Arr) -> list[Part]:
    """One feature column (already cast to the group's type) as parts: one MessagePack value per row."""
    t = arr.type
    if _is_number(t) or pt.is_timestamp(t) or pt.is_date(t):
        return [_nullable(arr, _numbers(arr) if _is_number(t) else _int64s(to_micros(arr)))]
    if _is_bytes(t):
        data = arr.cast(BINARY).fill_null(b"")
        tag = 0xDB if (pt.is_string(t) or pt.is_large_string(t)) else 0xC6
        return [_nullable(arr, _length_headers(tag, _lengths(data))), data]
    if _is_list(t) and _is_number(t.value_type):
        flat: Arr = arr.flatten()  # type: ignore[attr-defined]
        if flat.null_count == 0:
            lengths: Any = pc.list_value_length(arr)
            counts = np.asarray(lengths.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
            items = _numbers(flat)
            offsets = np.zeros(len(arr) + 1, dtype=np.int64)
            np.cumsum(counts * items.shape[1], out=offsets[1:])
            buffers = [None, _buffer(offsets), _buffer(np.ascontiguousarray(items))]
            body: Arr = pa.LargeBinaryArray.from_buffers(BINARY, len(arr), buffers)
            return [_nullable(arr, _length_headers(0xDD, counts)), body]
    values = arr.to_pylist()
    if pt.is_decimal(t):
        values = [None if v is None else str(v) for v in values]
    return [pa.array([_ENCODER.encode(v) for v in values], BINARY)]


def record_header(
    fingerprint: int,
    event: np.ndarray[Any, Any],
    created: np.ndarray[Any, Any],
    order: np.ndarray[Any, Any],
    n_features: int,
) -> np.ndarray[Any, Any]:
    """Per-row record header followed by the MessagePack array32 header of ``n_features`` values."""
    dtype = np.dtype([("v", "u1"), ("fp", ">u4"), ("e", ">i8"), ("c", ">i8"), ("o", ">i8"), ("a", "u1"), ("n", ">u4")])
    head = np.empty(len(event), dtype=dtype)
    head["v"] = FORMAT_VERSION
    head["fp"] = fingerprint
    head["e"] = event
    head["c"] = created
    head["o"] = order
    head["a"] = 0xDD
    head["n"] = n_features
    return head.view(np.uint8).reshape(len(event), dtype.itemsize)


# -- times ----------------------------------------------------------------------------------------


def to_micros(arr: Arr) -> np.ndarray[Any, Any]:
    """Times as int64: microseconds since the epoch for timestamps and dates (naive = UTC); integers as they are.

    Nulls become 0; callers check nulls first. Nanoseconds are truncated to microseconds (event
    and created times are checked to be whole microseconds first: see :func:`sub_micro`).
    """
    t = arr.type
    if pt.is_timestamp(t):
        ints = arr.cast(pa.timestamp("us", tz=t.tz), safe=False).cast(pa.int64())
    elif pt.is_date(t):
        days = arr.cast(pa.date32()).cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
        return np.asarray(days, dtype=np.int64) * _US_PER_DAY
    else:
        ints = arr.cast(pa.int64())
    return np.array(ints.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def sub_micro(arr: Arr) -> str | None:
    """The first time of a nanosecond timestamp array that is not a whole microsecond, as text, or None.

    Record headers hold microseconds: such a time would be cut, so that two times of one
    microsecond would tie (the later write winning, even when older), a TTL would expire it up
    to a microsecond early, and times before 1970 would move forward.
    """
    if not (pt.is_timestamp(arr.type) and arr.type.unit == "ns"):
        return None
    ints = arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    cut = np.flatnonzero(np.asarray(ints, dtype=np.int64) % 1000)
    if not len(cut):
        return None
    stamp: Any = pa.array([int(ints[cut[0]])], pa.timestamp("ns"))
    first = pc.strftime(stamp, format="%Y-%m-%dT%H:%M:%S")
    text: str = first[0].as_py()
    return text if arr.type.tz is None else f"{text}Z"


def from_micros(value: int, t: pa.DataType) -> object:
    """The inverse of :func:`to_micros` for one value: a datetime, a date or an int."""
    if pt.is_timestamp(t):
        tz = t.tz
        if tz is None:
            return _EPOCH + timedelta(microseconds=value)
        return pa.scalar(value, type=pa.timestamp("us", tz=tz)).as_py()
    if pt.is_date(t):
        return date.fromordinal(_EPOCH_ORDINAL + value // _US_PER_DAY)
    return value


def value_converter(t: pa.DataType) -> Callable[[Any], Any] | None:
    """A function turning a decoded feature value into the Python value Arrow gives, or None if the same."""
    if pt.is_timestamp(t) or pt.is_date(t):
        return lambda v: None if v is None else from_micros(v, t)
    if pt.is_decimal(t):
        return lambda v: None if v is None else Decimal(v)
    return None


def now_micros(now: datetime | date | None) -> int:
    """``now`` (default: the current time) in microseconds since the epoch; naive datetimes are UTC."""
    if now is None:
        now = datetime.now(UTC)
    if isinstance(now, datetime):
        if now.tzinfo is not None:
            now = now.astimezone(UTC).replace(tzinfo=None)
        delta = now - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return (now.toordinal() - _EPOCH_ORDINAL) * _US_PER_DAY


# -- keys -----------------------------------------------------------------------------------------


def key_strings(columns: Sequence[Arr]) -> Arr:
    """Entity keys as binary text (see the module docstring); matches :func:`key_string`."""
    texts = []
    for arr in columns:
        text = arr.cast(pa.string())
        if len(columns) > 1 and not pt.is_integer(arr.type):
            text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), "|", "\\|")
        texts.append(text)
    joined: Any = texts[0] if len(texts) == 1 else pc.binary_join_element_wise(*texts, "|")  # type: ignore[call-overload]
    result: Arr = joined.cast(BINARY)
    return result


def key_string(values: Sequence[int | str], composite: bool) -> bytes:
    """One entity key as :func:`key_strings` writes it."""
    if not composite:
        return str(values[0]).encode()
    parts = [str(v) if isinstance(v, int) else v.replace("\\", "\\\\").replace("|", "\\|") for v in values]
    return "|".join(parts).encode()


def key_hashes(keys: Arr) -> np.ndarray[Any, Any]:
    """A 64-bit hash of each binary key (from its length, first and last 8 bytes), vectorised.

    Stable across versions and platforms: stores persist it (the Redis key bitmap).
    """
    n = len(keys)
    offsets = _ints(keys.buffers()[1])[keys.offset : keys.offset + n + 1]
    data_buffer = keys.buffers()[2]
    data = _bytes(data_buffer) if data_buffer is not None else np.zeros(0, np.uint8)
    padded = np.concatenate([data, np.zeros(8, dtype=np.uint8)])
    lengths = offsets[1:] - offsets[:-1]
    lanes = np.arange(8)
    first = np.where(lanes < lengths[:, None], padded[offsets[:-1, None] + lanes], 0).astype(np.uint8)
    tail_start = np.maximum(offsets[1:] - 8, offsets[:-1])
    last = np.where(lanes < lengths[:, None], padded[tail_start[:, None] + lanes], 0).astype(np.uint8)
    a = np.ascontiguousarray(first).view("<u8").ravel()
    b = np.ascontiguousarray(last).view("<u8").ravel()
    with np.errstate(over="ignore"):
        h = (a * _MIX[0]) ^ (b * _MIX[1]) ^ (lengths.astype(np.uint64) * _MIX[2])
        h ^= h >> np.uint64(31)
        h *= _MIX[1]
        h ^= h >> np.uint64(29)
    result: np.ndarray[Any, Any] = h
    return result
