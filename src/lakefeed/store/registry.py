"""The registry: feature groups, views, training datasets and materialization progress, in SQL.

It lives in the catalog's own database (SQLite embedded, PostgreSQL in production), in tables
prefixed ``lakefeed_``. Each definition is one row of JSON; counters (the insert number of a
group, the last materialized insert) are updated atomically by the database.

``lakefeed_inserts`` holds the inserts in flight: :meth:`Registry.next_write` adds a ``running``
row in the same transaction that takes the insert number, and the insert removes it when it has
finished (committed and written online, or rolled back). An insert whose online write failed
first turns its row ``aborted`` (atomically, and only if it is still ``running``), then rolls
back; the row stays ``aborted`` when the rollback cannot be done, so that materialization never
publishes that insert. A database created before this table existed gets it on open.

A row is kept only while it is needed, so the table does not grow with the number of inserts:

* a finished or rolled-back insert removes its own row (:meth:`Registry.finish_write`);
* a ``running`` row its writer left behind (it died, or the registry failed as it finished) is
  removed by the materialization that takes it over once stale (:meth:`Registry.take_over`); a
  group that is not online is never materialized, so :meth:`Registry.next_write` removes such
  rows of its group after :data:`~lakefeed.store.materialize.STALE_AFTER` (nothing reads them);
* an ``aborted`` row stays while the group's history holds rows of that insert (a windowed
  materialization would publish them otherwise); once the history has none (the rollback was
  done but its row could not be removed, or the rows were deleted by hand as the ``CommitError``
  says), :meth:`FeatureStore.materialize <lakefeed.FeatureStore.materialize>` removes it
  (:meth:`Registry.forget_aborted`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel

from lakefeed.errors import CatalogError, ConfigError, NotFoundError
from lakefeed.store.definitions import FeatureGroupSpec, FeatureViewSpec, TrainingDatasetSpec
from lakefeed.store.materialize import STALE_AFTER

__all__ = ["InFlight", "Registry"]

M = TypeVar("M", bound=BaseModel)

_META = sa.MetaData()
_KINDS = {
    "group": sa.Table(
        "lakefeed_feature_groups",
        _META,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("writes", sa.BigInteger, nullable=False, default=0),
        sa.Column("materialized", sa.BigInteger, nullable=False, default=0),
    ),
    "view": sa.Table(
        "lakefeed_feature_views",
        _META,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
    ),
    "dataset": sa.Table(
        "lakefeed_training_datasets",
        _META,
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
    ),
}
_INSERTS = sa.Table(
    "lakefeed_inserts",
    _META,
    sa.Column("group_name", sa.String(255), primary_key=True),
    sa.Column("write", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),  # microseconds since the epoch (the writer's clock)
)
_WORDS = {"group": "feature group", "view": "feature view", "dataset": "training dataset"}


InsertState = Literal["running", "aborted"]


@dataclass(frozen=True)
class InFlight:
    """An insert that has taken its number and not finished: ``running``, or ``aborted`` (never to be published)."""

    write: int
    state: InsertState
    started_at: int
    """When the insert took its number, in microseconds since the epoch."""


def _now_micros() -> int:
    return time.time_ns() // 1000


class Registry:
    """Definitions in a SQL database (a SQLAlchemy URL).

    Example:
        >>> import tempfile, pyarrow as pa
        >>> from lakefeed.store.definitions import FeatureGroupSpec, schema_to_b64
        >>> reg = Registry(f"sqlite:///{tempfile.mkdtemp()}/catalog.db")
        >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
        >>> reg.put_group(FeatureGroupSpec(name="g", keys=["user_id"], event_time="ts", table="features.g",
        ...                                schema_b64=schema_to_b64(schema)))
        >>> reg.next_write("g"), reg.next_write("g"), reg.list_groups()
        (1, 2, ['g'])
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        try:
            self.engine = sa.create_engine(uri, future=True)
            _META.create_all(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            msg = f"cannot open the feature registry at {_redact(uri)}: {exc}"
            raise CatalogError(msg) from exc

    @contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            msg = f"the feature registry at {_redact(self.uri)} failed: {exc.orig}"
            raise CatalogError(msg) from exc

    def _put(self, kind: str, name: str, spec: BaseModel, *, replace: bool) -> None:
        table = _KINDS[kind]
        with self._begin() as conn:
            exists = conn.execute(sa.select(table.c.name).where(table.c.name == name)).first() is not None
            if exists and not replace:
                msg = f"{_WORDS[kind]} {name!r} already exists; open it instead, or drop it first"
                raise ConfigError(msg)
            if exists:
                conn.execute(table.update().where(table.c.name == name).values(spec=spec.model_dump_json()))
            else:
                conn.execute(table.insert().values(name=name, spec=spec.model_dump_json()))

    def _get(self, kind: str, name: str, model: type[M]) -> M:
        table = _KINDS[kind]
        with self._begin() as conn:
            row = conn.execute(sa.select(table.c.spec).where(table.c.name == name)).first()
        if row is None:
            msg = f"no {_WORDS[kind]} {name!r}; there are {self._list(kind)}"
            raise NotFoundError(msg)
        return model.model_validate_json(row[0])

    def _list(self, kind: str) -> list[str]:
        table = _KINDS[kind]
        with self._begin() as conn:
            return sorted(r[0] for r in conn.execute(sa.select(table.c.name)))

    def _delete(self, kind: str, name: str) -> None:
        table = _KINDS[kind]
        with self._begin() as conn:
            conn.execute(table.delete().where(table.c.name == name))

    # -- groups ---------------------------------------------------------------------------------

    def put_group(self, spec: FeatureGroupSpec, *, replace: bool = False) -> None:
        """Register a feature group (``replace`` to update its definition)."""
        self._put("group", spec.name, spec, replace=replace)

    def get_group(self, name: str) -> FeatureGroupSpec:
        """A group's definition. Raises NotFoundError naming the groups there are."""
        return self._get("group", name, FeatureGroupSpec)

    def list_groups(self) -> list[str]:
        """The names of the feature groups."""
        return self._list("group")

    def delete_group(self, name: str) -> None:
        """Forget a feature group (its table is left alone) and its inserts in flight."""
        with self._begin() as conn:
            conn.execute(_INSERTS.delete().where(_INSERTS.c.group_name == name))
        self._delete("group", name)

    def next_write(self, group: str) -> int:
        """Take the next insert number of ``group`` (1, 2, ...) and record it as ``running``, atomically.

        The caller must end it with :meth:`finish_write` (or :meth:`abort_write` first). For a
        group that is not online (never materialized, so nothing reads its inserts in flight) the
        same transaction removes the ``running`` records of its inserts that started
        :data:`~lakefeed.store.materialize.STALE_AFTER` or longer ago: left by writers that died,
        they would stay forever otherwise.
        """
        table = _KINDS["group"]
        now = _now_micros()
        with self._begin() as conn:
            conn.execute(table.update().where(table.c.name == group).values(writes=table.c.writes + 1))
            row = conn.execute(sa.select(table.c.writes, table.c.spec).where(table.c.name == group)).first()
            if row is None:
                msg = f"no feature group {group!r}"
                raise NotFoundError(msg)
            write = int(row[0])
            if not _is_online(row[1]):
                conn.execute(
                    _INSERTS.delete().where(
                        _INSERTS.c.group_name == group,
                        _INSERTS.c.state == "running",
                        _INSERTS.c.started_at <= now - STALE_AFTER // timedelta(microseconds=1),
                    )
                )
            conn.execute(_INSERTS.insert().values(group_name=group, write=write, state="running", started_at=now))
        return write

    def in_flight(self, group: str) -> dict[int, InFlight]:
        """The inserts of ``group`` that took a number and have not finished, by insert number."""
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(_INSERTS.c.write, _INSERTS.c.state, _INSERTS.c.started_at).where(
                    _INSERTS.c.group_name == group
                )
            ).all()
        return {int(w): InFlight(int(w), "aborted" if s == "aborted" else "running", int(t)) for w, s, t in rows}

    def abort_write(self, group: str, write: int) -> bool:
        """Mark a running insert ``aborted`` (never to be published); False if it is not running any more.

        False means a materialization took the insert over as stale (and may have published its rows).
        """
        return self._update_inserts(
            _INSERTS.update()
            .where(_INSERTS.c.group_name == group, _INSERTS.c.write == write, _INSERTS.c.state == "running")
            .values(state="aborted")
        )

    def finish_write(self, group: str, write: int) -> bool:
        """Forget an insert in flight (it finished); False if it was not there (taken over as stale)."""
        return self._update_inserts(_INSERTS.delete().where(_INSERTS.c.group_name == group, _INSERTS.c.write == write))

    def take_over(self, group: str, write: int, *, stale_after: timedelta) -> bool:
        """Remove a ``running`` insert that started ``stale_after`` or longer ago (its writer presumed dead).

        Returns whether it was removed: False if it finished, was aborted or is not stale (any more).
        """
        cutoff = _now_micros() - stale_after // timedelta(microseconds=1)
        return self._update_inserts(
            _INSERTS.delete().where(
                _INSERTS.c.group_name == group,
                _INSERTS.c.write == write,
                _INSERTS.c.state == "running",
                _INSERTS.c.started_at <= cutoff,
            )
        )

    def forget_aborted(self, group: str, write: int) -> bool:
        """Remove the record of an ``aborted`` insert; False if there is none (any more).

        Call it only once the group's history holds none of the insert's rows (its rollback was
        done, or they were deleted by hand): while it holds some, the record is what keeps every
        materialization, windowed ones included, from publishing them. The insert's rows were
        committed before its record turned ``aborted``, so a history read after the record was
        found ``aborted`` and holding none of them never holds them again.
        """
        return self._update_inserts(
            _INSERTS.delete().where(
                _INSERTS.c.group_name == group, _INSERTS.c.write == write, _INSERTS.c.state == "aborted"
            )
        )

    def _update_inserts(self, statement: sa.Update | sa.Delete) -> bool:
        with self._begin() as conn:
            return bool(conn.execute(statement).rowcount)

    def writes(self, group: str) -> int:
        """The last insert number taken for ``group``."""
        return self._counter(group, "writes")

    def materialized(self, group: str) -> int:
        """The last insert number of ``group`` whose rows are all in the online store."""
        return self._counter(group, "materialized")

    def set_materialized(self, group: str, write: int) -> None:
        """Record that inserts up to ``write`` are in the online store (never moves backwards)."""
        table = _KINDS["group"]
        with self._begin() as conn:
            conn.execute(
                table.update().where(table.c.name == group, table.c.materialized < write).values(materialized=write)
            )

    def _counter(self, group: str, column: str) -> int:
        table = _KINDS["group"]
        with self._begin() as conn:
            row = conn.execute(sa.select(table.c[column]).where(table.c.name == group)).first()
        if row is None:
            msg = f"no feature group {group!r}"
            raise NotFoundError(msg)
        return int(row[0])

    # -- views and datasets ---------------------------------------------------------------------

    def put_view(self, spec: FeatureViewSpec, *, replace: bool = False) -> None:
        """Register a feature view."""
        self._put("view", spec.name, spec, replace=replace)

    def get_view(self, name: str) -> FeatureViewSpec:
        """A view's definition."""
        return self._get("view", name, FeatureViewSpec)

    def list_views(self) -> list[str]:
        """The names of the feature views."""
        return self._list("view")

    def delete_view(self, name: str) -> None:
        """Forget a feature view."""
        self._delete("view", name)

    def put_dataset(self, spec: TrainingDatasetSpec) -> None:
        """Register a training dataset."""
        self._put("dataset", spec.name, spec, replace=False)

    def get_dataset(self, name: str) -> TrainingDatasetSpec:
        """A training dataset's definition."""
        return self._get("dataset", name, TrainingDatasetSpec)

    def list_datasets(self) -> list[str]:
        """The names of the training datasets."""
        return self._list("dataset")

    def delete_dataset(self, name: str) -> None:
        """Forget a training dataset."""
        self._delete("dataset", name)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Registry({_redact(self.uri)!r})"


def _is_online(spec_json: str) -> bool:
    """Whether a stored feature group definition is online (the field's default when it is absent)."""
    online = json.loads(spec_json).get("online", True)
    return online is not False


def _redact(uri: str) -> str:
    from lakefeed.tables.warehouse import _redact as redact

    return redact(uri)
