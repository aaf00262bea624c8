"""A :class:`Pipeline` of transformers over named columns, saved as a versioned JSON spec.

The spec is what travels from training to serving: ``Pipeline.from_spec(spec)`` rebuilds the
fitted pipeline anywhere, and ``transform_row`` on one row gives bit-identical output to
``transform`` on a batch holding it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa

from lakefeed.errors import ColumnNotFoundError, ConfigError, NotFittedError
from lakefeed.transforms.base import (
    FeatureTransformer,
    check_no_clash,
    fit_progress,
    pandas_result,
    replace_columns,
    transformer_from_spec,
)
from lakefeed.transforms.data import Chunk, column_names, fit_chunks, input_kind, to_chunk

__all__ = ["SPEC_FORMAT", "SPEC_VERSION", "Pipeline"]

SPEC_FORMAT = "lakefeed.transforms.pipeline"
SPEC_VERSION = 1


class Pipeline:
    """Transformers applied in order, each to its named columns.

    Fitting streams the data once per *pass*: steps that read only raw columns no earlier step
    touches are fitted together in the first pass; a step that reads an earlier step's output
    (or transforms a column again) is fitted in a later pass over the data transformed by the
    steps before it. A typical pipeline (scalers and encoders on different columns) is one pass.

    Args:
        steps: The transformers, each with ``columns=[...]``.

    Raises:
        ConfigError: A step without ``columns``, or an empty pipeline.

    Example:
        >>> import pyarrow as pa, lakefeed.transforms as lt
        >>> t = pa.table({"age": [20.0, 40.0], "country": ["fr", "de"], "y": [0, 1]})
        >>> pipe = lt.Pipeline([lt.StandardScaler(columns=["age"]), lt.OneHotEncoder(columns=["country"])]).fit(t)
        >>> pipe.transform(t).to_pydict()
        {'age': [-1.0, 1.0], 'country_de': [0.0, 1.0], 'country_fr': [1.0, 0.0], 'y': [0, 1]}
        >>> pipe.transform_row({"age": 40.0, "country": "fr", "y": 1})
        {'age': 1.0, 'country_de': 0.0, 'country_fr': 1.0, 'y': 1}
        >>> lt.Pipeline.from_json(pipe.to_json()).transform_row({"age": 20.0, "country": "de"})
        {'age': -1.0, 'country_de': 1.0, 'country_fr': 0.0}
    """

    def __init__(self, steps: Sequence[FeatureTransformer]) -> None:
        steps = list(steps)
        if not steps:
            msg = "a Pipeline needs at least one step, e.g. Pipeline([StandardScaler(columns=['x'])])"
            raise ConfigError(msg)
        for i, step in enumerate(steps):
            if not isinstance(step, FeatureTransformer):
                msg = f"step {i} is {type(step).__name__}, not a lakefeed transformer"
                raise ConfigError(msg)
            if step.columns is None:
                msg = (
                    f"step {i} ({type(step).__name__}) has no columns=[...]; in a Pipeline every step names its columns"
                )
                raise ConfigError(msg)
        self.steps = steps

    # -- fitting -------------------------------------------------------------------------------

    @property
    def is_fitted(self) -> bool:
        """True when every step is fitted."""
        return all(step.is_fitted for step in self.steps)

    @property
    def input_columns(self) -> list[str]:
        """The columns the pipeline reads from its input (in first-use order)."""
        produced: set[str] = set()
        needed: list[str] = []
        for step in self.steps:
            for name in step.columns or ():
                if name not in produced and name not in needed:
                    needed.append(name)
            if step.is_fitted:
                produced.update(step.output_names())
        return needed

    @property
    def output_columns(self) -> list[str]:
        """The columns the steps produce, in output order (e.g. the loader's ``features=``)."""
        self._check_fitted()
        order: list[str] = list(self.input_columns)
        for step in self.steps:
            names = list(step.columns or ())
            outputs = step.output_names()
            first = order.index(names[0])
            order = (
                [c for c in order[:first] if c not in names] + outputs + [c for c in order[first:] if c not in names]
            )
        return order

    def _passes(self, raw: Sequence[str]) -> list[int]:
        """The pass in which each step is fitted (see the class docstring)."""
        passes: list[int] = []
        raw_set = set(raw)
        for i, step in enumerate(self.steps):
            cols = set(step.columns or ())
            depends = [passes[j] for j in range(i) if not cols <= raw_set or cols & set(self.steps[j].columns or ())]
            passes.append(1 + max(depends) if depends else 0)
        return passes

    def fit(self, X: Any, *, progress: bool | None = None, num_threads: int | None = None) -> Self:
        """Fit every step on ``X`` (numpy with named columns, pandas, Arrow, or a lakefeed ``Table``/``Scan``).

        Args:
            X: The training data; a table or scan is streamed in threads, in bounded memory.
            progress: Show a ``rich`` progress bar per pass (default: for tables on a terminal).
            num_threads: Threads reading a table's tasks.

        Returns:
            self, fitted.

        Raises:
            ColumnNotFoundError: A step's column is neither in ``X`` nor made by an earlier step.
        """
        raw = column_names(X)
        needed = [c for c in self.input_columns if c in raw]
        passes = self._passes(raw)
        for p in range(max(passes) + 1):
            todo = [i for i, q in enumerate(passes) if q == p]
            done = [i for i, q in enumerate(passes) if q < p]

            def accumulate(chunks: Iterator[Chunk], todo: list[int] = todo, done: list[int] = done) -> dict[int, Any]:
                return self._accumulate(chunks, todo, done)

            with fit_progress(X, progress, f"pass {p + 1}/{max(passes) + 1}") as advance:
                parts = fit_chunks(X, needed, accumulate, num_threads=num_threads, on_task_done=advance)
            for i in todo:
                step = self.steps[i]
                acc = parts[0][i]
                for part in parts[1:]:
                    acc = step._merge(acc, part[i])
                step._finish(acc)
                step.input_names = list(step.columns or ())
        return self

    def _accumulate(self, chunks: Iterator[Chunk], todo: list[int], done: list[int]) -> dict[int, Any]:
        accs = {i: self.steps[i]._begin(list(self.steps[i].columns or ())) for i in todo}
        for chunk in chunks:
            data: dict[str, Any] = dict(chunk)
            for i in done:
                data = _apply_step(self.steps[i], data)
            for i in todo:
                step = self.steps[i]
                missing = [c for c in step.columns or () if c not in data]
                if missing:
                    msg = f"step {i} ({type(step).__name__}) needs {missing}: not in the input nor made before"
                    raise ColumnNotFoundError(msg)
                step._update(accs[i], {c: data[c] for c in step.columns or ()})
        return accs

    # -- applying ------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        unfitted = [f"{i} ({type(s).__name__})" for i, s in enumerate(self.steps) if not s.is_fitted]
        if unfitted:
            msg = f"pipeline steps {unfitted} are not fitted; call .fit(data) first (or load a fitted spec)"
            raise NotFittedError(msg)

    def transform(self, X: Any) -> Any:
        """Apply every step to a table-like input; the same kind comes back (Arrow, pandas, dict).

        Raises:
            NotFittedError: The pipeline is not fitted.
            ColumnNotFoundError: An input column is missing.
        """
        self._check_fitted()
        if input_kind(X) == "scan":
            msg = "transform() takes in-memory data; for a table, use lf.Loader(..., transform=pipeline)"
            raise ConfigError(msg)
        if input_kind(X) == "arrow_table" and X.num_rows and len(X.column(0).chunks) > 1:
            # chunk by chunk: no concatenation of the table's columns, and cache-sized pieces
            return pa.Table.from_batches([self.transform_batch(b) for b in X.to_batches()])
        chunk = to_chunk(X)
        data: dict[str, Any] = dict(chunk)
        for step in self.steps:
            data = _apply_step(step, data)
        names = list(chunk)
        if input_kind(X) == "pandas":
            # columns no step touched are the input's own (dtype kept), not a round trip through Arrow
            new = {k: v for k, v in data.items() if not (k in chunk and v is chunk[k])}
            return pandas_result(X, list(data), new)
        if input_kind(X) in ("arrow_table", "arrow_batch") or isinstance(X, Mapping):
            return replace_columns(X, names, data)
        return np.column_stack([np.asarray(v) for v in data.values()])

    def transform_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Apply every step to an Arrow record batch (what the loader calls in its threads)."""
        out = self.transform(batch)
        if not isinstance(out, pa.RecordBatch):  # pragma: no cover - transform keeps the kind
            msg = "internal: transform of a RecordBatch did not return one"
            raise TypeError(msg)
        return out

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema of ``transform``'s output for input of ``schema``."""
        empty = pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)
        return self.transform_batch(empty).schema

    def fit_transform(self, X: Any) -> Any:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def transform_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Apply every step to one row, bit-identical to the same row in :meth:`transform`.

        Raises:
            NotFittedError: The pipeline is not fitted.
            ColumnNotFoundError: An input column is missing from the row.
        """
        self._check_fitted()
        out = dict(row)
        for step in self.steps:
            out = step.transform_row(out)
        return out

    # -- the spec ------------------------------------------------------------------------------

    def to_spec(self) -> dict[str, Any]:
        """The pipeline as versioned, JSON-ready data (steps with their parameters and fitted state)."""
        return {"format": SPEC_FORMAT, "version": SPEC_VERSION, "steps": [s.to_spec() for s in self.steps]}

    def to_json(self, *, indent: int | None = None) -> str:
        """:meth:`to_spec` as JSON (strict: no NaN literals; non-finite floats are strings)."""
        return json.dumps(self.to_spec(), indent=indent, allow_nan=False)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Pipeline:
        """A pipeline rebuilt from :meth:`to_spec`'s output.

        Raises:
            ConfigError: Not a pipeline spec, a newer spec version, or a malformed step.
        """
        if not isinstance(spec, Mapping) or spec.get("format") != SPEC_FORMAT:
            msg = f"not a lakefeed pipeline spec (expected format {SPEC_FORMAT!r})"
            raise ConfigError(msg)
        version = spec.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            msg = f"pipeline spec version must be a positive int, got {version!r}; the spec is malformed"
            raise ConfigError(msg)
        if version > SPEC_VERSION:
            msg = f"pipeline spec version {version!r} is newer than this lakefeed reads ({SPEC_VERSION}); upgrade it"
            raise ConfigError(msg)
        steps = spec.get("steps")
        if not isinstance(steps, list) or not all(isinstance(s, Mapping) for s in steps):
            msg = f"pipeline spec 'steps' must be a list of step specs, got {type(steps).__name__}; spec malformed"
            raise ConfigError(msg)
        return cls([transformer_from_spec(s) for s in steps])

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        """A pipeline rebuilt from :meth:`to_json`'s output."""
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"pipeline spec is not valid JSON: {exc}"
            raise ConfigError(msg) from exc
        return cls.from_spec(spec)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the spec as JSON to ``path`` (atomically: a temporary file renamed into place)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(self.to_json(indent=1))
        tmp.replace(target)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Pipeline:
        """Read a pipeline saved with :meth:`save`."""
        return cls.from_json(Path(path).read_text())

    def __repr__(self) -> str:
        return "Pipeline([" + ", ".join(repr(s) for s in self.steps) + "])"


def _apply_step(step: FeatureTransformer, data: dict[str, Any]) -> dict[str, Any]:
    names = list(step.columns or ())
    missing = [c for c in names if c not in data]
    if missing:
        msg = f"{type(step).__name__} needs column(s) {missing}; the data has {list(data)}"
        raise ColumnNotFoundError(msg)
    outputs = step._apply({c: data[c] for c in names})
    check_no_clash(data, names, outputs, type(step).__name__)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == names[0]:
            out.update(outputs)
        elif key not in names:
            out[key] = value
    return out
