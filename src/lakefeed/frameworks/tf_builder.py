"""The seed's fluent ``DatasetPipelineBuilder`` over ``tf.data`` (re-exported by ``lakefeed.frameworks.tensorflow``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lakefeed.errors import ConfigError
from lakefeed.frameworks.tf_pipeline import (
    _AUTO_FIX,
    AUTOTUNE,
    _check_cache_file,
    _check_dataset,
    _check_finite,
    _check_int,
    _tf,
    _translate,
)

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["DatasetPipelineBuilder"]


class DatasetPipelineBuilder:
    """A fluent ``tf.data`` pipeline: each method applies one step, in the order called, and returns the builder.

    Each method is the ``tf.data.Dataset`` method of the same name, with lakefeed's checks:
    arguments are validated, ``None`` means ``tf.data.AUTOTUNE`` for ``prefetch`` and
    ``map``, ``shuffle`` reshuffles every epoch, and a ``cache()`` after ``shuffle()`` (which
    would replay one order forever) or after an endless ``repeat()`` raises
    :class:`~lakefeed.errors.ConfigError`. Unlike :meth:`TensorFlowPipelineOptimizer.optimize`,
    the builder does not reorder or skip steps.

    Args:
        dataset: The pipeline's input.

    Raises:
        ConfigError: ``dataset`` is not a ``tf.data.Dataset``.

    Example:
        >>> import tensorflow as tf
        >>> from lakefeed.frameworks.tensorflow import DatasetPipelineBuilder
        >>> builder = DatasetPipelineBuilder(tf.data.Dataset.range(6)).cache().shuffle(6).batch(3).prefetch()
        >>> sorted(int(v) for b in builder.build() for v in b), builder
        ([0, 1, 2, 3, 4, 5], DatasetPipelineBuilder(cache → shuffle(6) → batch(3) → prefetch(AUTOTUNE)))
    """

    def __init__(self, dataset: tf.data.Dataset) -> None:
        self._tf = _tf()
        _check_dataset(self._tf, dataset, "DatasetPipelineBuilder")
        self._dataset = dataset
        self._steps: list[str] = []
        self._shuffled = False

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps applied so far, in order.

        Example:
            >>> import tensorflow as tf
            >>> DatasetPipelineBuilder(tf.data.Dataset.range(3)).repeat(2).steps
            ('repeat(2)',)
        """
        return tuple(self._steps)

    def cache(self, filename: str | os.PathLike[str] | None = None) -> DatasetPipelineBuilder:
        """Cache the elements after the first pass: in memory, or in ``filename``.

        Args:
            filename: A file name in an existing directory; None: memory.

        Returns:
            The builder.

        Raises:
            ConfigError: After ``shuffle()`` (call ``cache()`` first, so each epoch reshuffles),
                on an infinite dataset, or ``filename``'s directory does not exist.

        Example:
            >>> import tensorflow as tf
            >>> [int(v) for v in DatasetPipelineBuilder(tf.data.Dataset.range(3)).cache().build()]
            [0, 1, 2]
        """
        where = "DatasetPipelineBuilder.cache"
        if self._shuffled:
            msg = (
                f"{where}: a cache after shuffle() stores the first epoch's order and replays it every epoch; "
                "call cache() before shuffle()"
            )
            raise ConfigError(msg)
        _check_finite(self._tf, self._dataset, where)
        self._dataset = self._dataset.cache("" if filename is None else _check_cache_file(filename, where))
        self._steps.append("cache" if filename is None else f"cache({str(filename)!r})")
        return self

    def shuffle(self, buffer_size: int, *, seed: int | None = None) -> DatasetPipelineBuilder:
        """Shuffle with a buffer of ``buffer_size`` elements, in a new order every epoch.

        Args:
            buffer_size: Elements in the buffer; the dataset's size for a full shuffle.
            seed: Makes the sequence of epoch orders reproducible.

        Returns:
            The builder.

        Raises:
            ConfigError: ``buffer_size`` is not a positive int.

        Example:
            >>> import tensorflow as tf
            >>> sorted(int(v) for v in DatasetPipelineBuilder(tf.data.Dataset.range(4)).shuffle(4).build())
            [0, 1, 2, 3]
        """
        where = "DatasetPipelineBuilder.shuffle"
        _check_int(where, "buffer_size", buffer_size, minimum=1, fix="pass the dataset's size for a full shuffle")
        if seed is not None:
            _check_int(where, "seed", seed, minimum=0, fix="or pass None")
        self._dataset = self._dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
        self._steps.append(f"shuffle({buffer_size})")
        self._shuffled = True
        return self

    def batch(self, batch_size: int, *, drop_remainder: bool = False) -> DatasetPipelineBuilder:
        """Combine consecutive elements into batches of ``batch_size``.

        Args:
            batch_size: Elements per batch.
            drop_remainder: Drop a last, smaller batch (gives a fixed batch dimension).

        Returns:
            The builder.

        Raises:
            ConfigError: ``batch_size`` is not a positive int.

        Example:
            >>> import tensorflow as tf
            >>> ds = DatasetPipelineBuilder(tf.data.Dataset.range(5)).batch(2).build()
            >>> [b.numpy().tolist() for b in ds]
            [[0, 1], [2, 3], [4]]
        """
        _check_int("DatasetPipelineBuilder.batch", "batch_size", batch_size, minimum=1, fix="pass the rows per batch")
        if not isinstance(drop_remainder, bool):
            msg = f"DatasetPipelineBuilder.batch: drop_remainder must be True or False, got {drop_remainder!r}"
            raise ConfigError(msg)
        self._dataset = self._dataset.batch(batch_size, drop_remainder=drop_remainder)
        self._steps.append(f"batch({batch_size})")
        return self

    def prefetch(self, buffer_size: int | None = None) -> DatasetPipelineBuilder:
        """Prepare ``buffer_size`` elements ahead of the consumer; None: ``tf.data.AUTOTUNE``.

        Args:
            buffer_size: Elements to prepare ahead, ``tf.data.AUTOTUNE``, or None (AUTOTUNE).

        Returns:
            The builder.

        Raises:
            ConfigError: ``buffer_size`` is negative and not AUTOTUNE.

        Example:
            >>> import tensorflow as tf
            >>> [int(v) for v in DatasetPipelineBuilder(tf.data.Dataset.range(3)).prefetch(2).build()]
            [0, 1, 2]
        """
        size = AUTOTUNE if buffer_size is None else buffer_size
        _check_int("DatasetPipelineBuilder.prefetch", "buffer_size", size, minimum=0, fix=_AUTO_FIX, autotune=True)
        self._dataset = self._dataset.prefetch(size)
        self._steps.append("prefetch(AUTOTUNE)" if size == AUTOTUNE else f"prefetch({size})")
        return self

    def map(self, map_func: Callable[..., Any], num_parallel_calls: int | None = None) -> DatasetPipelineBuilder:
        """Apply ``map_func`` to every element, in parallel, keeping the order.

        Args:
            map_func: A function of an element (a tuple element's parts as arguments), traced
                once by ``tf.data``.
            num_parallel_calls: Calls at once, ``tf.data.AUTOTUNE``, or None (AUTOTUNE).

        Returns:
            The builder.

        Raises:
            ConfigError: ``map_func`` is not callable, or ``num_parallel_calls`` is not positive.
            SchemaError: ``map_func`` failed on the elements' spec while being traced.

        Example:
            >>> import tensorflow as tf
            >>> [int(v) for v in DatasetPipelineBuilder(tf.data.Dataset.range(3)).map(lambda v: v * 10).build()]
            [0, 10, 20]
        """
        where = "DatasetPipelineBuilder.map"
        if not callable(map_func):
            msg = f"{where}: map_func must be callable, got {type(map_func).__name__}"
            raise ConfigError(msg)
        calls = AUTOTUNE if num_parallel_calls is None else num_parallel_calls
        _check_int(where, "num_parallel_calls", calls, minimum=1, fix=_AUTO_FIX, autotune=True)
        try:
            self._dataset = self._dataset.map(map_func, num_parallel_calls=calls, deterministic=True)
        except (TypeError, ValueError, self._tf.errors.OpError) as exc:
            name = getattr(map_func, "__name__", type(map_func).__name__)
            spec = self._dataset.element_spec
            raise _translate(self._tf, exc, f"DatasetPipelineBuilder.map({name}) on elements {spec}") from exc
        self._steps.append("map")
        return self

    def repeat(self, count: int = -1) -> DatasetPipelineBuilder:
        """Repeat the dataset ``count`` times; -1 (the default): forever.

        Args:
            count: Repetitions, or -1 for no end.

        Returns:
            The builder.

        Raises:
            ConfigError: ``count`` is below -1.

        Example:
            >>> import tensorflow as tf
            >>> [int(v) for v in DatasetPipelineBuilder(tf.data.Dataset.range(2)).repeat(2).build()]
            [0, 1, 0, 1]
        """
        _check_int("DatasetPipelineBuilder.repeat", "count", count, minimum=-1, fix="pass -1 to repeat forever")
        self._dataset = self._dataset.repeat(count)
        self._steps.append("repeat" if count == -1 else f"repeat({count})")
        return self

    def build(self) -> tf.data.Dataset:
        """The dataset with every step applied so far.

        Returns:
            The ``tf.data.Dataset``; the builder stays usable.

        Example:
            >>> import tensorflow as tf
            >>> int(DatasetPipelineBuilder(tf.data.Dataset.range(7)).batch(2).build().cardinality())
            4
        """
        return self._dataset

    def __repr__(self) -> str:
        return f"DatasetPipelineBuilder({' → '.join(self._steps) or 'no steps'})"
