"""Ray Train: each worker reads its shard of a table through :class:`lakefeed.Loader`, resumable from checkpoints.

Inside a ``train_loop_per_worker`` (a ``TorchTrainer`` or any Ray Train trainer),
:func:`train_loader` builds the worker's loader with rank and world size from the Ray Train
context: every worker gets the same number of equal batches (no rank waits on a collective that
another never reaches) and every row exactly once per epoch across workers. When the run was
restored from a checkpoint that :func:`save_loader_state` wrote into, the loader resumes at the
exact batch where that checkpoint was taken, on every worker.

A checkpoint holds one small JSON file per rank (``lakefeed-loader-rank{r}.json``); put it in
the same directory as the model's state and pass that directory to
``ray.train.Checkpoint.from_directory`` in ``ray.train.report`` (every worker reports; Ray
merges the workers' files into one checkpoint).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakefeed._utils import import_optional
from lakefeed.errors import ResumeStateError

if TYPE_CHECKING:
    from lakefeed.loader import Loader
    from lakefeed.tables import Scan, Table

__all__ = ["load_loader_state", "save_loader_state", "train_loader"]

STATE_FILE = "lakefeed-loader-rank{rank}.json"


def _train() -> Any:
    import_optional("ray", extra="ray", purpose="lakefeed's Ray Train helpers")
    return import_optional("ray.train", extra="ray", purpose="lakefeed's Ray Train helpers")


def train_loader(
    source: Table | Scan | str, *, resume: bool = True, snapshot: int | None = None, **kwargs: Any
) -> Loader:
    """This Ray Train worker's :class:`lakefeed.Loader`: its shard of ``source``, resumed from the run's checkpoint.

    Args:
        source: A table, a scan or a table URI, as for :class:`lakefeed.Loader`.
        resume: Restore the loader's position from ``ray.train.get_checkpoint()`` when there is
            one (saved by :func:`save_loader_state`); the loader then reads the snapshot the
            state was taken on, whatever was committed since.
        snapshot: The snapshot every rank reads. Resolve it once in the driver (e.g.
            ``lakefeed.open_table(uri).snapshot_id``) and pass it in the loop's config: a worker
            that resolves "the latest" on its own may see a commit its peers did not, and ranks
            with different rows yield different numbers of batches (DDP hangs). None: the
            latest, as each worker opens the table.
        **kwargs: Everything else :class:`lakefeed.Loader` takes (``batch_size``, ``features``,
            ``label``, ``seed``, ...); ``rank`` and ``world_size`` come from the Ray Train context.

    Example:
        .. code-block:: python

            def train_loop_per_worker(config):
                loader = lakefeed.ray.train_loader(config["table"], batch_size=256, features=["f0", "f1"], label="y")
                for epoch in range(loader.epoch, config["epochs"]):
                    for i, batch in enumerate(loader.torch(), start=1):
                        ...  # forward, backward, step
                        if i % 100 == 0:
                            with tempfile.TemporaryDirectory() as d:
                                lakefeed.ray.save_loader_state(loader, d)
                                ray.train.report({"epoch": epoch}, checkpoint=ray.train.Checkpoint.from_directory(d))

    Raises:
        MissingDependencyError: Ray is not installed (``pip install 'lakefeed[ray]'``).
        ConfigError: Called outside a Ray Train worker, or with ``rank``/``world_size``.
        ResumeStateError: The checkpoint's loader state belongs to another table or configuration.
    """
    from lakefeed.errors import ConfigError
    from lakefeed.loader import Loader

    train = _train()
    if "rank" in kwargs or "world_size" in kwargs:
        msg = "train_loader takes rank and world_size from the Ray Train context; do not pass them"
        raise ConfigError(msg)
    try:
        context = train.get_context()
        rank, world = int(context.get_world_rank()), int(context.get_world_size())
    except Exception as exc:  # outside a training worker Ray raises assorted errors
        msg = f"train_loader runs inside a Ray Train worker (train_loop_per_worker); here: {exc}"
        raise ConfigError(msg) from exc
    state: dict[str, Any] | None = None
    checkpoint = train.get_checkpoint() if resume else None
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = _read_state(folder, rank)
        saved = state.get("config", {}).get("snapshot_id")
        if saved is not None and snapshot is not None and int(saved) != snapshot:
            msg = f"the checkpoint's loader read snapshot {saved}, but snapshot={snapshot} was given; resume on {saved}"
            raise ResumeStateError(msg)
        if saved is not None:
            snapshot = int(saved)  # the rows the run was reading, not what was committed since
    loader = Loader(source, rank=rank, world_size=world, snapshot=snapshot, **kwargs)
    if state is not None:
        loader.load_state_dict(state)
    return loader


def save_loader_state(loader: Loader, directory: str | os.PathLike[str]) -> Path:
    """Write ``loader.state_dict()`` into a checkpoint directory (one file per rank); returns the file.

    Example:
        >>> import lakefeed as lf, pyarrow as pa, tempfile
        >>> from lakefeed.integrations.ray_train import load_loader_state, save_loader_state
        >>> t = lf.Warehouse(tempfile.mkdtemp()).create_table("d.t", pa.table({"x": [1.0, 2.0, 3.0]}))
        >>> loader = lf.Loader(t, batch_size=1, features=["x"], seed=0)
        >>> it = iter(loader); _ = next(it)
        >>> folder = tempfile.mkdtemp(); _ = save_loader_state(loader, folder)
        >>> again = lf.Loader(t, batch_size=1, features=["x"], seed=0)
        >>> load_loader_state(again, folder); again.position
        1
    """
    path = Path(directory) / STATE_FILE.format(rank=loader.rank)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(loader.state_dict()))
    scratch.replace(path)
    return path


def load_loader_state(loader: Loader, directory: str | os.PathLike[str]) -> None:
    """Resume ``loader`` from the state :func:`save_loader_state` wrote for its rank into ``directory``.

    Raises:
        ResumeStateError: The directory holds no state for this rank (e.g. the world size
            changed), or the state belongs to another table or configuration.
    """
    loader.load_state_dict(_read_state(directory, loader.rank))


def _read_state(directory: str | os.PathLike[str], rank: int) -> dict[str, Any]:
    path = Path(directory) / STATE_FILE.format(rank=rank)
    if not path.exists():
        found = sorted(p.name for p in Path(directory).glob("lakefeed-loader-rank*.json"))
        msg = (
            f"checkpoint {str(directory)!r} holds no loader state for rank {rank} (it has {found}); "
            "resume with the world size the checkpoint was taken with"
        )
        raise ResumeStateError(msg)
    state: dict[str, Any] = json.loads(path.read_text())
    return state
