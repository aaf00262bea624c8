"""Batches made ahead in a thread of their own: gathered, finished (pinned, sent to a device), queued."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, cast

import numpy as np

from lakefeed.loader.convert import Columns, batch_of
from lakefeed.loader.reader import ROW_INDEX

__all__ = ["BatchThread", "split_batches"]

T = TypeVar("T")
_END = object()


RowIndex = np.ndarray | tuple[int, np.ndarray] | None
"""A batch's rows' table positions (for the shuffle statistic): all, ``(step, every step-th)``, or none."""


def split_batches(batches: Iterator[Columns]) -> Iterator[tuple[dict[str, Any], RowIndex, int]]:
    """``(batch as handed out, row index or None, rows)`` for each batch of the stream."""
    for columns in batches:
        row_index = columns.pop(ROW_INDEX, None)
        rows = next((len(v) for v in columns.values() if not isinstance(v, int)), 0)  # not a rows_only "start"
        yield batch_of(columns), row_index if isinstance(row_index, np.ndarray | tuple) else None, rows


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class BatchThread(Generic[T]):
    """Runs a loader's batch stream and a ``finish`` step in two threads, up to ``depth`` batches ahead.

    One thread gathers batches out of the shuffled blocks, the other finishes them (a framework's
    copy into pinned memory and its asynchronous copy to a device); the consumer (a training loop)
    only takes finished batches off a queue, so all of that overlaps the model's work on the
    batch before. The loader counts a batch as yielded only when the consumer takes it, so its
    ``state_dict()`` stays exact however far ahead these threads are.

    Yields ``(finished batch, row index or None, rows)``; the row index (table positions, kept for
    the shuffle-quality statistic) is taken out before ``finish`` sees the batch.
    """

    def __init__(self, batches: Iterator[Columns], finish: Callable[[dict[str, Any]], T], depth: int = 3) -> None:
        self._batches = batches
        self._finish = finish
        self._gathered: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._finished: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._gather, name="lakefeed-gather", daemon=True),
            threading.Thread(target=self._finish_all, name="lakefeed-finish", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _put(self, into: queue.Queue[object], item: object) -> bool:
        while not self._stop.is_set():
            try:
                into.put(item, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def _gather(self) -> None:
        try:
            for item in split_batches(self._batches):
                if self._stop.is_set() or not self._put(self._gathered, item):
                    return
            self._put(self._gathered, _END)
        except BaseException as error:
            self._put(self._gathered, _Failed(error))
        finally:
            close = getattr(self._batches, "close", None)
            if close is not None:
                close()  # in this thread: the generator is never closed while it runs

    def _finish_all(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self._gathered.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _END or isinstance(item, _Failed):
                    self._put(self._finished, item)
                    return
                gathered = cast("tuple[dict[str, Any], RowIndex, int]", item)
                if not self._put(self._finished, (self._finish(gathered[0]), *gathered[1:])):
                    return
        except BaseException as error:
            self._put(self._finished, _Failed(error))

    def __iter__(self) -> Iterator[tuple[T, RowIndex, int]]:
        while True:
            item = self._finished.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]

    def close(self) -> None:
        """Stop the threads (each finishes the batch in hand) and drop what they made ahead."""
        self._stop.set()
        while any(t.is_alive() for t in self._threads):
            for q in (self._gathered, self._finished):
                with contextlib.suppress(queue.Empty):
                    q.get(timeout=0.02)
        for thread in self._threads:
            thread.join()
