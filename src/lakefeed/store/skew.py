"""Training/serving skew check: online vectors against an offline point-in-time read at the same instant."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lakefeed.errors import ConfigError, UnsupportedOperationError

if TYPE_CHECKING:
    from lakefeed.store.views import FeatureView

__all__ = ["Mismatch", "SkewReport", "check_skew"]


@dataclass(frozen=True)
class Mismatch:
    """One feature of one entity that differs between the online store and the offline history."""

    entity: dict[str, Any]
    feature: str
    online: Any
    offline: Any


@dataclass
class SkewReport:
    """The entities compared, at which instant, and every mismatch found."""

    view: str
    checked: int
    at: datetime
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """True when online and offline agree on every sampled entity."""
        return not self.mismatches


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def check_skew(view: FeatureView, *, sample: int = 1000, seed: int = 0, now: datetime | None = None) -> SkewReport:
    """Compare ``sample`` entities' online vectors with a point-in-time read of the history at ``now``.

    Entities are drawn without replacement from each group's distinct keys (for a view over
    several groups, the i-th entity takes the i-th drawn key of every group), so a ``sample`` at
    least the number of entities checks every one of them once. A consistent store reports no mismatch; a value
    changed behind the store's back, a failed materialization, or an event dated in the future
    (in the history at ``now`` it does not exist yet, online it is the latest) show up.

    Raises:
        ConfigError: ``sample`` is not positive.
        UnsupportedOperationError: A group's event time is an integer (no instant to compare at).
    """
    if sample < 1:
        msg = f"sample must be a positive number of entities, got {sample!r}"
        raise ConfigError(msg)
    groups = view._groups()
    at = now or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # naive means UTC, as for online reads
    rng = np.random.default_rng(seed)
    entities: list[dict[str, Any]] | None = None
    time_type: Any = None
    for spec in groups.values():
        t = spec.arrow_schema.field(spec.event_time).type
        if not pa.types.is_timestamp(t):
            msg = f"check-skew compares at an instant; feature group {spec.name!r} has a {t} event time"
            raise UnsupportedOperationError(msg)
        time_type = time_type or t
        keys = view.store._group_table(spec).scan(columns=list(spec.keys)).to_arrow()
        distinct = keys.group_by(list(spec.keys)).aggregate([]).sort_by([(k, "ascending") for k in spec.keys])
        if not distinct.num_rows:
            return SkewReport(view.name, 0, at)
        # without replacement: a sample as large as the group checks every entity once; only the
        # sampled keys become Python values
        drawn = rng.choice(distinct.num_rows, min(sample, distinct.num_rows), replace=False)
        picked = distinct.take(drawn).to_pylist()
        entities = picked if entities is None else [{**e, **p} for e, p in zip(entities, picked, strict=False)]
    if not entities or time_type is None:
        return SkewReport(view.name, 0, at)
    tz: Any = time_type.tz
    stamp = at if tz else at.astimezone(UTC).replace(tzinfo=None)
    spine = pa.Table.from_pylist(entities).append_column(
        "__lf_at", pa.array([stamp] * len(entities), type=pa.timestamp("us", tz=tz))
    )
    offline = view.training_data(spine, spine_time="__lf_at").drop(["__lf_at"]).to_pylist()
    online = view.get_feature_vectors(entities, now=at)
    report = SkewReport(view.name, len(entities), at)
    for entity, off, on in zip(entities, offline, online, strict=True):
        for name in view.features:
            if not _same(on.get(name), off.get(name)):
                report.mismatches.append(Mismatch(entity, name, on.get(name), off.get(name)))
    return report
