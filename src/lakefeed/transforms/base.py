"""The transformer contract: fit on anything (streamed), transform batches and single rows alike.

A :class:`FeatureTransformer` works on named columns (``columns=[...]``) or, without
``columns``, on every column of the input as one array, as scikit-learn's transformers do.
Fitting goes through mergeable statistics (:mod:`lakefeed.transforms.stats`): a lakefeed
``Table`` or ``Scan`` is streamed task by task in threads, an in-memory input is one chunk.
Applying runs one function over numpy columns; :meth:`~FeatureTransformer.transform_row` runs
the same function over one-element columns, so a row online gives bit-identical output to the
same row in a batch offline.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pyarrow as pa

from lakefeed.errors import ColumnNotFoundError, ConfigError, NotFittedError, SchemaError
from lakefeed.transforms.data import Chunk, column_names, fit_chunks, input_kind, to_chunk, total_rows

__all__ = ["FeatureTransformer", "decode_floats", "encode_floats", "transformer_from_spec"]

_REGISTRY: dict[str, type[FeatureTransformer]] = {}


def encode_floats(values: np.ndarray | Sequence[float]) -> list[float | str]:
    """Floats for JSON: finite ones as they are (``repr`` round-trips exactly), others as strings."""
    return [float(v) if math.isfinite(v) else str(float(v)) for v in np.asarray(values, dtype=np.float64).tolist()]


def decode_floats(values: Sequence[float | str]) -> np.ndarray:
    """The inverse of :func:`encode_floats`."""
    return np.array([float(v) for v in values], dtype=np.float64)


class FeatureTransformer(ABC):
    """Base class of lakefeed's transformers (the seed's ``FeatureTransformer``).

    Subclasses define ``kind`` (the name in a spec) and the fitting and applying steps; this
    class gives them ``fit``/``transform``/``fit_transform``/``transform_row`` over every kind
    of input and ``to_spec``/``from_spec``.

    Args:
        columns: The columns to transform. Without it the transformer works on the whole input
            (every column of a table, or a 1-D/2-D array) and returns a numpy array.

    Example:
        >>> import lakefeed.transforms as lt, pyarrow as pa
        >>> t = pa.table({"a": [1.0, 3.0], "b": ["x", "y"]})
        >>> lt.StandardScaler(columns=["a"]).fit(t).transform(t).to_pydict()
        {'a': [-1.0, 1.0], 'b': ['x', 'y']}
    """

    kind: ClassVar[str] = ""
    numeric_input: ClassVar[bool] = True
    """Inputs are numbers (a row's value becomes a float64 element, as a batch's column becomes float64)."""

    def __init__(self, *, columns: Sequence[str] | None = None) -> None:
        if isinstance(columns, str):
            msg = f"columns takes a list of names, e.g. columns=[{columns!r}]"
            raise ConfigError(msg)
        if columns is not None and len(columns) == 0:
            msg = "columns=[] selects nothing; pass the columns to transform, or None for the whole input"
            raise ConfigError(msg)
        if columns is not None and len(set(columns)) != len(columns):
            msg = f"columns={list(columns)!r} names a column twice; name each column once"
            raise ConfigError(msg)
        self.columns: tuple[str, ...] | None = tuple(columns) if columns is not None else None
        self.input_names: list[str] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _REGISTRY[cls.kind] = cls

    # -- what a subclass defines ---------------------------------------------------------------

    @abstractmethod
    def _begin(self, names: list[str]) -> Any:
        """An empty accumulator for the columns ``names``."""

    @abstractmethod
    def _update(self, acc: Any, chunk: Chunk) -> None:
        """Add one chunk (the input columns) to the accumulator."""

    @abstractmethod
    def _merge(self, left: Any, right: Any) -> Any:
        """Two accumulators together."""

    @abstractmethod
    def _finish(self, acc: Any) -> None:
        """Turn the merged accumulator into the fitted parameters."""

    @abstractmethod
    def _apply(self, chunk: Chunk) -> dict[str, np.ndarray]:
        """The output columns (in order) for the input columns of a chunk."""

    @abstractmethod
    def _params(self) -> dict[str, Any]:
        """The constructor arguments (besides ``columns``), JSON-serialisable."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """The fitted parameters, JSON-serialisable."""

    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None:
        """Restore the fitted parameters from :meth:`_state`'s output."""

    def _apply_row(self, names: list[str], row: Mapping[str, Any]) -> dict[str, Any] | None:
        """A faster row path with the very same float64 operations as :meth:`_apply` (None: use ``_apply``)."""
        return None

    def _outputs(self, names: list[str]) -> list[str]:
        """The output column names for the input columns ``names``."""
        return list(names)

    def _output_value(self, value: Any) -> Any:
        """One output element as a Python value."""
        return value.item() if isinstance(value, np.generic) else value

    # -- the public API ------------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` ran (or a fitted spec was loaded)."""
        return self.input_names is not None

    def _check_fitted(self) -> list[str]:
        if self.input_names is None:
            msg = f"{type(self).__name__} is not fitted; call .fit(data) first (or load a fitted spec)"
            raise NotFittedError(msg)
        return self.input_names

    def fit(self, X: Any, *, progress: bool | None = None, num_threads: int | None = None) -> Self:
        """Fit on ``X``: numpy, pandas, Arrow, or a lakefeed ``Table``/``Scan`` (streamed in threads).

        Args:
            X: The training data.
            progress: Show a ``rich`` progress bar (default: for tables and scans on a terminal).
            num_threads: Threads reading a table's tasks (default: CPU count).

        Returns:
            self, fitted.

        Raises:
            ColumnNotFoundError: A column in ``columns`` is not in ``X``.
            SchemaError: A column has the wrong type for this transformer.
        """
        names = list(self.columns) if self.columns is not None else column_names(X)
        with fit_progress(X, progress, type(self).__name__) as advance:
            parts = fit_chunks(
                X, names, lambda chunks: self._accumulate(names, chunks), num_threads=num_threads, on_task_done=advance
            )
        acc = parts[0]
        for part in parts[1:]:
            acc = self._merge(acc, part)
        self._finish(acc)
        self.input_names = names
        return self

    def _accumulate(self, names: list[str], chunks: Iterator[Chunk]) -> Any:
        acc = self._begin(names)
        for chunk in chunks:
            self._update(acc, chunk)
        return acc

    def transform(self, X: Any) -> Any:
        """Apply the fitted transform to ``X``.

        With ``columns``, the named columns of a table-like input (Arrow table or record batch,
        pandas, a dict of arrays) are replaced by their outputs and the same kind of object comes
        back; without ``columns``, the whole input is transformed into a 2-D numpy array.

        Raises:
            NotFittedError: :meth:`fit` has not run.
            ColumnNotFoundError: An input column is missing.
        """
        names = self._check_fitted()
        if self.columns is None:
            given = column_names(X)
            if len(given) != len(names):
                width = len(given)
                msg = f"{type(self).__name__} was fitted on {len(names)} columns, got {width}; pass the same features"
                raise SchemaError(msg)
            unnamed = [f"x{i}" for i in range(len(names))]
            if names != unnamed and given != unnamed and given != names:
                # both named: columns in another order (or others) would silently swap features
                msg = f"{type(self).__name__} was fitted on the columns {names}, got {given}; pass them in that order"
                raise SchemaError(msg)
            chunk = to_chunk(X)
            chunk = dict(zip(names, chunk.values(), strict=True))
            return _stack(list(self._apply(chunk).values()))
        outputs = self._apply(to_chunk(X, names))
        return replace_columns(X, names, outputs, owner=type(self).__name__)

    def fit_transform(self, X: Any) -> Any:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def transform_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Apply the transform to one row (a dict), bit-identical to the same row in :meth:`transform`.

        Keys other than the input columns pass through; the input columns are replaced by the
        outputs, in place.

        Raises:
            NotFittedError: :meth:`fit` has not run.
            ColumnNotFoundError: An input column is missing from the row.
        """
        names = self._check_fitted()
        missing = [n for n in names if n not in row]
        if missing:
            msg = f"row has no {missing} for {type(self).__name__}; it has {sorted(row)}"
            raise ColumnNotFoundError(msg)
        outputs = self._apply_row(names, row)
        if outputs is None:
            chunk: Chunk = {n: _one(row[n], numeric=self.numeric_input) for n in names}
            outputs = {k: self._output_value(v[0]) for k, v in self._apply(chunk).items()}
        if list(outputs) == names and _contiguous(row, names):
            out = dict(row)  # each input replaced by its own output, in place: nothing can clash
            out.update(outputs)
            return out
        check_no_clash(row, names, outputs, type(self).__name__)
        return _replace_in_row(row, names, outputs)

    def output_names(self) -> list[str]:
        """The names of the output columns (the inputs' names, or one per category for encoders)."""
        return self._outputs(self._check_fitted())

    def to_spec(self) -> dict[str, Any]:
        """The transformer as JSON-ready data: kind, columns, parameters and fitted state."""
        return {
            "kind": self.kind,
            "columns": list(self.columns) if self.columns is not None else None,
            "params": self._params(),
            "input_names": self.input_names,
            "state": self._state() if self.input_names is not None else None,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FeatureTransformer:
        """A transformer restored from :meth:`to_spec`'s output (fitted if the spec was)."""
        return transformer_from_spec(spec)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        cols = f"columns={list(self.columns)!r}" if self.columns is not None else ""
        sep = ", " if params and cols else ""
        return f"{type(self).__name__}({params}{sep}{cols})"


def transformer_from_spec(spec: Mapping[str, Any]) -> FeatureTransformer:
    """Restore a transformer from its spec.

    Raises:
        ConfigError: The spec names an unknown kind or is malformed.
    """
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    cls = _REGISTRY.get(str(kind))
    if cls is None:
        msg = f"unknown transformer kind {kind!r} in spec; known kinds: {sorted(_REGISTRY)}"
        raise ConfigError(msg)
    try:
        obj = cls(columns=spec.get("columns"), **dict(spec.get("params") or {}))
        names = spec.get("input_names")
        if spec.get("state") is not None and names is not None:
            obj._load_state(dict(spec["state"]))
            obj.input_names = list(names)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        msg = f"malformed {kind} spec: {exc}"
        raise ConfigError(msg) from exc
    return obj


def _one(value: Any, *, numeric: bool) -> np.ndarray:
    """One row's value as a one-element column, typed as a batch column of it would be."""
    if numeric and isinstance(value, float | int | np.floating | np.integer):
        return np.array([value], dtype=np.float64)  # bool too: 1.0 / 0.0, as Arrow casts it
    out = np.empty(1, dtype=object)
    out[0] = value.item() if isinstance(value, np.generic) else value
    return out


def _stack(columns: list[np.ndarray]) -> np.ndarray:
    if not columns:
        return np.empty((0, 0))
    return np.column_stack(columns) if columns[0].ndim == 1 else np.concatenate(columns, axis=1)


def check_no_clash(existing: Iterable[str], names: Sequence[str], outputs: Iterable[str], owner: str) -> None:
    """Raise if an output column would overwrite a column that is kept (not one of ``names``).

    Raises:
        SchemaError: An output name is already the name of a column that passes through.
    """
    replaced = set(names)
    kept = {str(c) for c in existing} - replaced
    clash = [c for c in outputs if c in kept]
    if clash:
        msg = f"{owner} outputs {clash}, which the input already has as other column(s); rename them first"
        raise SchemaError(msg)


def _contiguous(row: Mapping[str, Any], names: list[str]) -> bool:
    """True if ``names`` are consecutive keys of ``row``, in that order."""
    keys = list(row)
    first = keys.index(names[0])
    return keys[first : first + len(names)] == names


def _replace_in_row(row: Mapping[str, Any], names: list[str], outputs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    first = names[0]
    replaced = set(names)
    for key, value in row.items():
        if key == first:
            out.update(outputs)
        elif key not in replaced:
            out[key] = value
    return out


def replace_columns(data: Any, names: list[str], outputs: dict[str, Any], *, owner: str = "the transform") -> Any:
    """``data`` with the columns ``names`` replaced by ``outputs`` (placed where the first one was).

    Raises:
        SchemaError: An output would overwrite a column that passes through.
    """
    kind = input_kind(data)
    check_no_clash(column_names(data), names, outputs, owner)
    if kind in ("arrow_table", "arrow_batch"):
        fields: list[str] = []
        arrays: list[Any] = []
        for name in data.schema.names:
            if name == names[0]:
                fields.extend(outputs)
                arrays.extend(_arrow_column(v) for v in outputs.values())
            elif name not in names:
                fields.append(name)
                arrays.append(data.column(name))
        if kind == "arrow_table":
            return pa.Table.from_arrays(arrays, names=fields)
        return pa.RecordBatch.from_arrays(arrays, names=fields)
    if kind == "pandas":
        order: list[str] = []
        for col in column_names(data):
            if col == names[0]:
                order.extend(outputs)
            elif col not in names:
                order.append(col)
        return pandas_result(data, order, outputs)
    if isinstance(data, Mapping):
        return _replace_in_row(data, names, outputs)
    # a numpy array with named columns x0, x1, ...: the outputs stacked where the inputs were
    chunk = to_chunk(data)
    columns = [v for k, v in _replace_in_row(chunk, names, outputs).items()]
    return _stack([np.asarray(c) for c in columns])


def pandas_result(data: Any, order: list[str], new: Mapping[str, Any]) -> Any:
    """A DataFrame with the columns ``order``: those in ``new`` computed, the others kept from ``data``.

    Kept columns keep their dtype (categorical, nullable, object) and the index is ``data``'s;
    nothing is aligned on the index (duplicate labels are fine).
    """
    frame = data if hasattr(data, "columns") else data.to_frame(column_names(data)[0])
    by_name = {str(c): c for c in frame.columns}
    out = frame[[by_name[k] for k in order if k not in new]].copy()
    for i, name in enumerate(order):
        if name in new:
            values = new[name]
            if isinstance(values, pa.Array | pa.ChunkedArray):
                values = values.to_pandas().to_numpy()
            out.insert(i, name, values)
    return out


def _arrow_column(values: Any) -> Any:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    arr = np.asarray(values)
    return pa.array(arr.tolist()) if arr.dtype == object else pa.array(arr)


class fit_progress:
    """A ``rich`` progress bar over the rows a fit has read (no-op unless asked for or on a terminal)."""

    def __init__(self, data: Any, progress: bool | None, what: str) -> None:
        show = progress if progress is not None else (input_kind(data) == "scan" and sys.stderr.isatty())
        self._progress: Any = None
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn(f"[bold]fitting {what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            )
            self._task = self._progress.add_task("fit", total=total_rows(data))

    def __enter__(self) -> Any:
        if self._progress is None:
            return None
        self._progress.start()
        progress, task = self._progress, self._task
        return lambda rows: progress.advance(task, rows)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
