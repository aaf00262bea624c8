"""A ``rich`` progress display for long epochs: batches, rows/s and where the time goes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from lakefeed.loader.loader import Loader

__all__ = ["iterate_with_progress"]


def iterate_with_progress(
    loader: Loader, *, description: str | None = None, console: Console | None = None, refresh_per_second: float = 4
) -> Iterator[dict[str, Any]]:
    """Iterate ``loader`` while a progress bar shows batches, rows/s, the wait on data and the buffer.

    The display is refreshed from the loader's :meth:`~lakefeed.Loader.stats` a few times a
    second (never per batch), so it costs nothing measurable.

    Example:
        >>> import io, lakefeed as lf, pyarrow as pa, tempfile
        >>> from rich.console import Console
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.p", pa.table({"x": [1.0, 2.0, 3.0]}))
        >>> out = io.StringIO()
        >>> batches = list(lf.Loader(t, batch_size=2, features=["x"]).progress(console=Console(file=out, width=120)))
        >>> len(batches), "2/2" in out.getvalue()
        (2, True)
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    total = len(loader)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} rows/s"),
        TextColumn("waiting on data {task.fields[wait]}"),
        TextColumn("blocks ready {task.fields[ready]}"),
        TimeRemainingColumn(),
    )
    label = description or f"{loader.scan.table.name} epoch {loader.epoch}"
    with Progress(*columns, console=console, refresh_per_second=refresh_per_second, transient=False) as progress:
        task = progress.add_task(label, total=total, rate="-", wait="-", ready="-")
        for i, batch in enumerate(loader, start=1):
            yield batch
            if i % 16 == 0 or i == total:
                _update(progress, task, loader, i)
        _update(progress, task, loader, int(loader.stats()["batches"] or 0))


def _update(progress: Any, task: Any, loader: Loader, done: int) -> None:
    s = loader.stats()
    waited, consumed = float(s["seconds_waiting_for_data"] or 0), float(s["seconds_in_consumer"] or 0)
    share = waited / (waited + consumed) if waited + consumed else 0.0
    progress.update(
        task,
        completed=loader.position if loader.position else done,
        rate=f"{float(s['rows_per_second'] or 0):,.0f}",
        wait=f"{share:.0%}",
        ready=s["blocks_ready"],
    )
