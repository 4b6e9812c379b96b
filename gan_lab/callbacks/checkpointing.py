"""Checkpoints in gan_lab's units: ``last.ckpt`` every N generator steps, ``best.ckpt`` by FID.

Lightning's ModelCheckpoint counts ``trainer.global_step`` (every optimizer step, so
``n_disc + 1`` per batch here) and, under manual optimization with ``every_n_train_steps``,
warns on every save. ``LastCheckpoint`` is a small callback of our own for the periodic
"last" file; ranking by FID stays with ModelCheckpoint (``BestCheckpoint``). Every file is
written through :class:`AtomicCheckpointIO`, so a kill during a save never leaves a corrupt
``last.ckpt``: the previous one stays until the new one is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from gan_lab.errors import UserError
from gan_lab.io import atomic_write

LAST_NAME = "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temp file beside the target, then ``os.replace`` onto it."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_write(Path(path), lambda f: torch.save(checkpoint, f))


class LastCheckpoint(L.Callback):
    """Write ``<dirpath>/last.ckpt`` every ``every_n_generator_steps`` and when training ends.

    A run killed at any moment can continue from it (``resume=<run dir>``), losing at most
    the steps since the last save.
    """

    def __init__(self, dirpath: str, every_n_generator_steps: int = 500) -> None:
        if not isinstance(every_n_generator_steps, int) or every_n_generator_steps < 1:
            raise UserError(
                "callbacks.last_checkpoint.every_n_generator_steps must be a positive integer, "
                f"got {every_n_generator_steps!r}"
            )
        self.dirpath = Path(dirpath)
        self.every = every_n_generator_steps
        self._saved_at = -1

    @property
    def path(self) -> Path:
        return self.dirpath / LAST_NAME

    def _save(self, trainer: L.Trainer, step: int) -> None:
        if step == self._saved_at:
            return
        trainer.save_checkpoint(self.path)  # every rank calls it; rank 0 writes
        self._saved_at = step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        step = pl_module.generator_steps
        if step > 0 and step % self.every == 0:
            self._save(trainer, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._save(trainer, pl_module.generator_steps)


class BestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint keeping the checkpoint with the lowest validation FID.

    ``monitor="auto"`` takes the metrics callback's monitor (``val/fid_<first extractor>``);
    with no metrics configured it keeps nothing.
    """

    def __init__(self, monitor: str | None = "auto", **kwargs: Any) -> None:
        self._auto_monitor = monitor == "auto"
        kwargs.setdefault("mode", "min")
        kwargs.setdefault("save_top_k", 1)
        kwargs.setdefault("auto_insert_metric_name", False)
        # Rank only after validations (a step budget can end an epoch with no validation).
        kwargs.setdefault("save_on_train_epoch_end", False)
        super().__init__(monitor=None if self._auto_monitor else monitor, **kwargs)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._auto_monitor:
            metric = next(
                (c.monitor for c in trainer.callbacks if getattr(c, "monitor", None)
                 and not isinstance(c, ModelCheckpoint)),
                None,
            )  # fmt: skip
            self.monitor = f"val/{metric}" if metric else None
            if self.monitor is None:
                self.save_top_k = 0  # nothing to rank by: keep no "best"
        super().setup(trainer, pl_module, stage)

    def rank_final_weights(self, trainer: L.Trainer) -> None:
        """Rank the final weights, validated by ``trainer.validate`` after fit (Lightning's
        ModelCheckpoint only saves while fitting, and a step budget can end mid-epoch)."""
        if self.monitor is None or self.save_top_k == 0:
            return
        if self._last_global_step_saved == trainer.global_step:
            return
        self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = trainer.global_step
