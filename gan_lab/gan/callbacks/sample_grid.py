"""Sample grids from the module's fixed noise, written as PNG and sent to the logger."""

from __future__ import annotations

import io
from pathlib import Path

import lightning as L
import torch
from torchvision.utils import make_grid, save_image

from gan_lab.io import atomic_write


class SampleGrid(L.Callback):
    """At each validation epoch end, render ``G(fixed_noise)`` to ``<dirpath>/step_NNNNNN.png``.

    The same noise every time, so successive grids show one set of latents evolving.
    ``latest.png`` beside them is always the newest grid.
    """

    def __init__(self, dirpath: str, nrow: int = 8) -> None:
        self.dirpath = Path(dirpath)
        self.nrow = nrow
        self.last_path: Path | None = None

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        images = pl_module.sampling_generator(pl_module.fixed_noise).float()
        grid = make_grid(images, nrow=self.nrow, normalize=True, value_range=(-1, 1), padding=2)
        step = pl_module.generator_steps
        path = self.dirpath / f"step_{step:06d}.png"
        png = io.BytesIO()
        save_image(grid, png, format="png")
        for target in (path, self.dirpath / "latest.png"):
            atomic_write(target, lambda f: f.write(png.getbuffer()))
        self.last_path = path
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # W&B; the CSV logger has the PNG files on disk
                logger.log_image(key="samples", images=[grid.cpu()], step=step)
