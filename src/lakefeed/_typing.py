"""Type aliases and ``Literal`` option sets shared across lakefeed."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal, TypeAlias

TableFormat: TypeAlias = Literal["iceberg", "paimon", "delta", "parquet"]
"""The table formats lakefeed reads."""

Scalar: TypeAlias = bool | int | float | str | bytes | Decimal | date | datetime
"""A literal value a filter can compare a column with."""

SnapshotRef: TypeAlias = int | datetime
"""A snapshot id, or a point in time (the snapshot current at that time is used)."""

DEFAULT_TARGET_BYTES = 64 << 20
"""Default in-memory size of one scan task (64 MiB)."""
