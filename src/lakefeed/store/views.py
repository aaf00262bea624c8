"""Feature views: point-in-time training data, saved training datasets, online feature vectors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakefeed.errors import ColumnNotFoundError, ConfigError
from lakefeed.store.definitions import WRITE_COLUMN, FeatureGroupSpec, FeatureViewSpec, TrainingDatasetSpec
from lakefeed.store.groups import as_table

if TYPE_CHECKING:
    from lakefeed.loader import Loader
    from lakefeed.store.feature_store import FeatureStore
    from lakefeed.store.skew import SkewReport
    from lakefeed.tables import Scan, Table
    from lakefeed.transforms import Pipeline

__all__ = ["FeatureView", "TrainingDataset"]

TRAINING_NAMESPACE = "training"
REPORT_KEY = b"lakefeed.missing"


class FeatureView:
    """Features picked from feature groups, with an optional transform pipeline.

    The same view gives point-in-time correct training data (:meth:`training_data`), saved,
    snapshot-pinned training datasets (:meth:`create_training_dataset`) and the latest feature
    vectors from the online store (:meth:`get_feature_vector`); the pipeline, if any, is applied
    to both, bit-identically.
    """

    def __init__(self, store: FeatureStore, spec: FeatureViewSpec) -> None:
        self.store = store
        self.spec = spec
        self._group_specs: dict[str, FeatureGroupSpec] | None = None
        self.last_report: dict[str, int] = {}
        """Per group, the spine rows of the last :meth:`training_data` call that got no features."""

    @property
    def name(self) -> str:
        """The view's name."""
        return self.spec.name

    @property
    def features(self) -> list[str]:
        """The served feature names, in order."""
        return [f.name for f in self.spec.features]

    @cached_property
    def served_features(self) -> list[str]:
        """The features of a vector, in order: :attr:`features`, or what the view's pipeline makes of them.

        A pipeline can rename and widen (a one-hot encoder makes ``color_red``, ``color_blue``
        of ``color``): these are the names :meth:`get_feature_vector` returns besides the keys.
        """
        pipeline = self.pipeline
        if pipeline is None:
            return self.features
        groups = self._groups()
        fields: dict[str, pa.DataType] = {}
        for spec in groups.values():
            schema = spec.arrow_schema
            for key in spec.keys:
                fields.setdefault(key, schema.field(key).type)
        for ref in self.spec.features:
            fields[ref.name] = groups[ref.group].arrow_schema.field(ref.feature).type
        names = pipeline.output_schema(pa.schema(list(fields.items()))).names
        keys = set(self.keys)
        return [n for n in names if n not in keys]

    @cached_property
    def keys(self) -> list[str]:
        """The entity key columns of the view's groups, in order (what an entity names)."""
        return list(dict.fromkeys(k for spec in self._groups().values() for k in spec.keys))

    @cached_property
    def pipeline(self) -> Pipeline | None:
        """The view's transform pipeline (None without one)."""
        if self.spec.transform is None:
            return None
        from lakefeed.transforms import Pipeline

        return Pipeline.from_json(self.spec.transform)

    def _groups(self) -> dict[str, FeatureGroupSpec]:
        # read once per view object: the online lookup path must not query the registry
        if self._group_specs is None:
            self._group_specs = {g: self.store.registry.get_group(g) for g in self.spec.groups}
        return self._group_specs

    def _spine_time(self, spine: pa.Table, spine_time: str | None, groups: dict[str, FeatureGroupSpec]) -> str:
        if spine_time is not None:
            if spine_time not in spine.column_names:
                msg = f"spine has no column {spine_time!r} (spine_time); it has {spine.column_names}"
                raise ColumnNotFoundError(msg)
            return spine_time
        candidates = list(dict.fromkeys(g.event_time for g in groups.values()))
        present = [c for c in candidates if c in spine.column_names]
        if len(present) == 1:
            return present[0]
        msg = f"which spine column is the event time? pass spine_time=... (spine columns: {spine.column_names})"
        raise ConfigError(msg)

    def training_data(
        self,
        spine: Any,
        label: str | None = None,
        *,
        spine_time: str | None = None,
        snapshots: Mapping[str, int | None] | None = None,
    ) -> pa.Table:
        """Point-in-time correct training data: each spine row with the features as of its time.

        For each spine row (keys, time) and each group, the group's row with equal keys and
        the greatest event time <= the spine time (within the group's TTL; ties by created time,
        then the later write) gives the features, or nulls when none qualifies. Every spine row
        comes back exactly once, in the spine's order, with all its columns (e.g. the label).
        The spine rows left without features are counted per group in :attr:`last_report`
        (and in the result's schema metadata).

        Args:
            spine: Keys, an event time and anything else (a label): Arrow, pandas or a dict.
            label: The spine's label column (checked to be there).
            spine_time: The spine's time column (default: the groups' event-time column name).
            snapshots: Read these group snapshots instead of the current ones.

        Raises:
            ColumnNotFoundError: A key, the time or the label is not in the spine.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from datetime import datetime
            >>> fs = lf.FeatureStore(tempfile.mkdtemp())
            >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
            >>> users = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=schema)
            >>> d1, d2, d3 = datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 3)
            >>> _ = users.insert({"user_id": [1, 1], "ts": [d1, d2], "clicks": [3, 5]})
            >>> view = fs.create_feature_view("v", ["users.clicks"])
            >>> spine = {"user_id": [1, 1, 2], "ts": [datetime(2026, 1, 1, 12), d3, d3]}
            >>> view.training_data(spine).column("clicks").to_pylist()  # as of each row's time; user 2 has none
            [3, 5, None]
            >>> view.last_report
            {'users': 1}
        """
        from lakefeed.store.offline import FeatureSource, point_in_time_join

        table = as_table(spine, "the spine")
        if label is not None and label not in table.column_names:
            msg = f"spine has no label column {label!r}; it has {table.column_names}"
            raise ColumnNotFoundError(msg)
        groups = self._groups()
        time_column = self._spine_time(table, spine_time, groups)
        sources = []
        for name, spec in groups.items():
            refs = [f for f in self.spec.features if f.group == name]
            group_table = self.store._group_table(spec)
            columns = [*spec.keys, spec.event_time, *([spec.created_time] if spec.created_time else [])]
            has_write = WRITE_COLUMN in group_table.schema.names
            scan = group_table.scan(
                columns=[*columns, *[r.feature for r in refs], *([WRITE_COLUMN] if has_write else [])],
                snapshot=(snapshots or {}).get(name),
            )
            sources.append(
                FeatureSource(
                    name=name,
                    data=scan,
                    keys=spec.keys,
                    event_time=spec.event_time,
                    features=[r.feature for r in refs],
                    created_time=spec.created_time,
                    ttl=spec.ttl,
                    write_order=WRITE_COLUMN if has_write else None,
                    output_names={r.feature: r.name for r in refs},
                )
            )
        result = point_in_time_join(table, sources, spine_time=time_column)
        out = result.table
        pipeline = self.pipeline
        if pipeline is not None:
            out = pipeline.transform(out)
        self.last_report = {name: int(missing) for name, missing in _missing(result).items()}
        import json

        metadata = dict(out.schema.metadata or {})
        metadata[REPORT_KEY] = json.dumps(self.last_report).encode()
        return out.replace_schema_metadata(metadata)

    def create_training_dataset(
        self, spine: Any, name: str, label: str | None = None, *, spine_time: str | None = None
    ) -> TrainingDataset:
        """Join the spine as :meth:`training_data` does and save the result as a table.

        The dataset records the snapshot of every group it read and the view's transform, so it
        reads back identically however the groups change later; :meth:`TrainingDataset.loader`
        feeds it to :class:`lakefeed.Loader`.

        Raises:
            ConfigError: A dataset of that name exists.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from datetime import datetime
            >>> fs = lf.FeatureStore(tempfile.mkdtemp())
            >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
            >>> users = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=schema)
            >>> d1, d2, d3 = datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 3)
            >>> _ = users.insert({"user_id": [1, 1], "ts": [d1, d2], "clicks": [3, 5]})
            >>> view = fs.create_feature_view("v", ["users.clicks"])
            >>> ds = view.create_training_dataset({"user_id": [1, 2], "ts": [d3, d3]}, "clicks_v1")
            >>> _ = users.insert({"user_id": [2], "ts": [d2], "clicks": [9]})  # later rows...
            >>> ds.read().column("clicks").to_pylist()  # ...do not change a saved dataset
            [5, None]
            >>> [b["features"].tolist() for b in lf.Loader(ds, features=["clicks"], fill_null=0.0, shuffle=False)]
            [[[5.0], [0.0]]]
        """
        if not isinstance(name, str) or not name.isidentifier():
            msg = f"training dataset name {name!r} must be an identifier, e.g. 'ctr_v1'"
            raise ConfigError(msg)
        if name in self.store.registry.list_datasets():
            msg = f"training dataset {name!r} already exists; datasets are immutable, pick a new name"
            raise ConfigError(msg)
        groups = self._groups()
        snapshots = {g: self.store._group_table(spec).snapshot_id for g, spec in groups.items()}
        data = self.training_data(spine, label, spine_time=spine_time, snapshots=snapshots)
        table_name = f"{TRAINING_NAMESPACE}.{name}"
        table = self.store.warehouse.create_table(table_name, data)
        spec = TrainingDatasetSpec(
            name=name,
            view=self.name,
            table=table_name,
            snapshots=snapshots,
            spine_time=self._spine_time(as_table(spine, "the spine"), spine_time, groups),
            label=label,
            transform=self.spec.transform,
            rows=data.num_rows,
            snapshot_id=table.snapshot_id,
        )
        try:
            self.store.registry.put_dataset(spec)
        except BaseException as exc:  # no definition, no table: the store is as it was
            from lakefeed.store.feature_store import _undo_table

            registry = self.store.registry
            _undo_table(self.store.warehouse, table_name, exc, lambda: name in registry.list_datasets())
            raise
        return TrainingDataset(self.store, spec, table)

    def get_feature_vector(self, entity: Mapping[str, Any], *, now: datetime | int | None = None) -> dict[str, Any]:
        """The latest features for one entity from the online store (None where a group has no row).

        Args:
            entity: The key values, e.g. ``{"user_id": 7, "item_id": 3}``.
            now: The time TTLs are checked against (default: now, UTC). Groups with integer event
                times have no clock: their TTL applies when ``now`` is an int in their units.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from datetime import datetime
            >>> fs = lf.FeatureStore(tempfile.mkdtemp())
            >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
            >>> users = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=schema)
            >>> d1, d2, d3 = datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 3)
            >>> _ = users.insert({"user_id": [1, 1], "ts": [d1, d2], "clicks": [3, 5]})
            >>> view = fs.create_feature_view("v", ["users.clicks"])
            >>> view.get_feature_vector({"user_id": 1})
            {'user_id': 1, 'clicks': 5}
        """
        return self.get_feature_vectors([entity], now=now)[0]

    def get_feature_vectors(
        self, entities: Sequence[Mapping[str, Any]], *, now: datetime | int | None = None
    ) -> list[dict[str, Any]]:
        """The latest features for many entities, one online read per group.

        Raises:
            ColumnNotFoundError: An entity lacks a key column of one of the view's groups.
            OnlineStoreUnavailableError: The online store is down.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from datetime import datetime
            >>> fs = lf.FeatureStore(tempfile.mkdtemp())
            >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
            >>> users = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=schema)
            >>> d1, d2, d3 = datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 3)
            >>> _ = users.insert({"user_id": [1, 1], "ts": [d1, d2], "clicks": [3, 5]})
            >>> view = fs.create_feature_view("v", ["users.clicks"])
            >>> view.get_feature_vectors([{"user_id": 2}, {"user_id": 1}])
            [{'user_id': 2, 'clicks': None}, {'user_id': 1, 'clicks': 5}]
        """
        store = self.store.online_store
        if store is None:
            msg = "this FeatureStore has no online store; pass online=... to FeatureStore"
            raise ConfigError(msg)
        when = datetime.now(UTC) if now is None else now
        step = now if isinstance(now, int) and not isinstance(now, bool) else None
        out: list[dict[str, Any]] = [dict(e) for e in entities]
        for name, spec in self._groups().items():
            refs = [f for f in self.spec.features if f.group == name]
            keys = _entity_keys(entities, spec.keys, name)
            absent = dict.fromkeys(ref.name for ref in refs)
            if not spec.online or not store.has_group(name):  # offline only, or nothing online yet
                for row in out:
                    row.update(absent)
                continue
            if isinstance(spec.ttl, int):  # integer event times: their TTL needs an integer now
                records = store.read(name, keys, now=step, ttl=spec.ttl) if step is not None else store.read(name, keys)
            else:
                records = store.read(name, keys, now=when, ttl=spec.ttl)
            pairs = [(ref.name, ref.feature) for ref in refs]
            # the whole group under its own names, in its order (``group.*``): records as they are
            if pairs == [(f, f) for f in store.group(name).features]:
                for row, record in zip(out, records, strict=True):
                    row.update(absent if record is None else record)
            else:
                for row, record in zip(out, records, strict=True):
                    row.update(absent if record is None else {served: record.get(feature) for served, feature in pairs})
        pipeline = self.pipeline
        if pipeline is not None:
            out = [pipeline.transform_row(row) for row in out]
        return out

    def check_skew(self, *, sample: int = 1000, seed: int = 0, now: datetime | None = None) -> SkewReport:
        """Compare ``sample`` entities' online vectors with a point-in-time read of the history at ``now``.

        See :func:`lakefeed.store.skew.check_skew`; ``lakefeed check-skew VIEW`` runs it from the shell.

        Example:
            >>> import lakefeed as lf, pyarrow as pa, tempfile
            >>> from datetime import datetime
            >>> fs = lf.FeatureStore(tempfile.mkdtemp())
            >>> schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("clicks", pa.int64())])
            >>> users = fs.create_feature_group("users", keys=["user_id"], event_time="ts", schema=schema)
            >>> d1, d2, d3 = datetime(2026, 1, 1), datetime(2026, 1, 2), datetime(2026, 1, 3)
            >>> _ = users.insert({"user_id": [1, 1], "ts": [d1, d2], "clicks": [3, 5]})
            >>> view = fs.create_feature_view("v", ["users.clicks"])
            >>> report = view.check_skew(sample=10)
            >>> report.checked, report.consistent
            (1, True)
        """
        from lakefeed.store.skew import check_skew

        return check_skew(self, sample=sample, seed=seed, now=now)

    def __repr__(self) -> str:
        return f"FeatureView({self.name!r}, features={self.features})"


def _entity_keys(entities: Sequence[Mapping[str, Any]], names: Sequence[str], group: str) -> list[Any]:
    """Each entity's key of a group, as a 1-tuple or a tuple in key order (a plain int or str as it is).

    Raises:
        ColumnNotFoundError: An entity lacks a key column (tested with ``in``: a ``defaultdict``
            entity is not given a default key).
    """
    missing = [k for k in names if any(k not in e for e in entities)]
    if missing:
        msg = f"entities need the key(s) {missing} of feature group {group!r}"
        raise ColumnNotFoundError(msg)
    if len(names) == 1:
        (name,) = names
        values = [e[name] for e in entities]
        # a bare value must not be a tuple, list or mapping, which the store would take as the key's parts
        return [v if type(v) is int or type(v) is str else (v,) for v in values]
    return [tuple(e[k] for k in names) for e in entities]


def _missing(result: Any) -> dict[str, int]:
    report = getattr(result, "report", {})
    out: dict[str, int] = {}
    for name, value in dict(report).items():
        out[name] = int(value.without_features)
    return out


@dataclass
class TrainingDataset:
    """A saved, snapshot-pinned training dataset."""

    store: FeatureStore
    spec: TrainingDatasetSpec
    table: Table

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.spec.name

    def read(self) -> pa.Table:
        """The dataset's rows (the same every time)."""
        return self._scan().to_arrow()

    def loader(self, **kwargs: Any) -> Loader:
        """A :class:`lakefeed.Loader` over the dataset (keyword arguments as for ``Loader``).

        The same as ``lf.Loader(dataset, **kwargs)``.
        """
        from lakefeed.loader import Loader

        return Loader(self._scan(), **kwargs)

    def as_scan(self) -> Scan:
        """The dataset's table at the snapshot its rows were saved in: what ``lf.Loader(dataset)`` reads."""
        return self._scan()

    def _scan(self) -> Scan:
        """The dataset table at the snapshot its rows were saved in (an empty dataset has none)."""
        snapshot = self.spec.snapshot_id
        if snapshot is None and self.spec.rows:  # a spec saved before snapshot ids were recorded
            snapshot = self.table.snapshots()[0].snapshot_id
        return self.table.scan(snapshot=snapshot)  # None: the empty table was saved without one
