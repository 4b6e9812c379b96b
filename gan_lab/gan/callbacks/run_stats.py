"""Wall-clock accounting for summary.json: training throughput and validation's share."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class RunStats(L.Callback):
    """Times training batches and validation loops separately.

    ``train_images_per_second`` counts real images consumed by training steps (all ranks)
    over the time spent in training batches only, so validation cost does not dilute it.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.train_seconds = 0.0
        self.validation_seconds = 0.0
        self.train_images = 0
        self._t0 = 0.0
        self.last_validation_step = -1  # generator step of the newest validation
        self.train_images_this_process = 0  # not checkpointed: did this process train at all

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *args: Any
    ) -> None:
        self.train_seconds += time.perf_counter() - self._t0
        self.train_images += len(batch) * trainer.world_size
        self.train_images_this_process += len(batch)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._v0 = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validation_seconds += time.perf_counter() - self._v0
        if not trainer.sanity_checking:
            self.last_validation_step = pl_module.generator_steps

    # Checkpointed, so that a resumed run's summary counts the whole run, not its last part.
    def state_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": time.perf_counter() - self.start,
            "train_seconds": self.train_seconds,
            "validation_seconds": self.validation_seconds,
            "train_images": self.train_images,
            "last_validation_step": self.last_validation_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.start = time.perf_counter() - float(state_dict.get("wall_seconds", 0.0))
        self.train_seconds = float(state_dict.get("train_seconds", 0.0))
        self.validation_seconds = float(state_dict.get("validation_seconds", 0.0))
        self.train_images = int(state_dict.get("train_images", 0))
        self.last_validation_step = int(state_dict.get("last_validation_step", -1))

    def summary(self) -> dict[str, float]:
        wall = time.perf_counter() - self.start
        return {
            "wall_seconds": round(wall, 3),
            "train_seconds": round(self.train_seconds, 3),
            "validation_seconds": round(self.validation_seconds, 3),
            "validation_share": round(self.validation_seconds / wall, 4) if wall else 0.0,
            "train_images": self.train_images,
            "train_images_per_second": (
                round(self.train_images / self.train_seconds, 1) if self.train_seconds else 0.0
            ),
        }
