"""A test-only callback that kills its own training process at a chosen point.

Added to a run with ``+callbacks.kill._target_=tests.killpoints.KillAt +callbacks.kill.step=N
+callbacks.kill.where=...``; ``python -m gan_lab.train`` runs from the repo root, so
``tests`` is importable as a namespace package. It acts only in a run started afresh (not
in the ``resume=`` run that continues it), or with ``resumed=true`` only in a resumed run
(``resume=<dir> callbacks.kill.step=M callbacks.kill.resumed=true`` kills that one again).

``where``:
- ``batch_start``: SIGKILL at the start of the batch after generator step ``step``, after any
  checkpoint written there (so ``step`` a multiple of the checkpoint interval is "right after
  a checkpoint");
- ``in_save``: SIGKILL halfway through writing the checkpoint of step ``step``: half of its
  bytes are in the temporary file when the process dies;
- ``sigterm``: send SIGTERM to itself at that point (the run saves and stops by itself).
"""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch

from gan_lab.io import atomic_write


class KillAt(L.Callback):
    def __init__(self, step: int, where: str = "batch_start", resumed: bool = False) -> None:
        if where not in ("batch_start", "in_save", "sigterm"):
            raise ValueError(f"unknown kill point {where!r}")
        self.step = step
        self.where = where
        self.resumed = resumed

    def _this_run(self, trainer: L.Trainer) -> bool:
        return (trainer.ckpt_path is not None) == self.resumed

    def _armed(self, trainer: L.Trainer, pl_module: Any) -> bool:
        return self._this_run(trainer) and pl_module.generator_steps == self.step

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.where != "in_save" or not self._this_run(trainer):
            return
        checkpoint_io = trainer.strategy.checkpoint_io
        save = checkpoint_io.save_checkpoint

        def save_or_die(checkpoint: dict, path: Any, storage_options: Any = None) -> None:
            if not (Path(path).name == "last.ckpt" and self._armed(trainer, pl_module)):
                save(checkpoint, path, storage_options)
                return
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            data = buffer.getvalue()

            def half_then_die(f: Any) -> None:
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)

            atomic_write(Path(path), half_then_die)

        checkpoint_io.save_checkpoint = save_or_die

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        if not self._armed(trainer, pl_module):
            return
        if self.where == "batch_start":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.where == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
