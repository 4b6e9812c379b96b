"""Lightning's progress bar, fed the training scalars that GANModule read at logging intervals.

A scalar logged with ``prog_bar=True`` is converted with ``.item()`` on every batch, each time
the bar refreshes (``trainer.progress_bar_metrics``): a host synchronization per step on a
GPU. GANModule therefore logs its scalars for the loggers only and keeps the host copies it
read at the last logging interval in ``progress_scalars``; this bar shows those.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import _RICH_AVAILABLE


class _HostScalars:
    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)  # type: ignore[misc]
        return {**metrics, **getattr(pl_module, "progress_scalars", {})}


class RichHostScalarsBar(_HostScalars, RichProgressBar):
    pass


class TQDMHostScalarsBar(_HostScalars, TQDMProgressBar):
    pass


def host_scalars_progress_bar() -> RichProgressBar | TQDMProgressBar:
    """The bar Lightning would pick by default (rich when installed), showing host scalars."""
    return RichHostScalarsBar() if _RICH_AVAILABLE else TQDMHostScalarsBar()
