"""Experiment loggers. W&B goes offline by itself when no API key is available."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger

from gan_lab.errors import UserError

WANDB_MODES = ("auto", "online", "offline", "disabled")


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` is online only with ``WANDB_API_KEY`` set: offline never prompts or waits."""
    if mode not in WANDB_MODES:
        raise UserError(f"logger.mode must be one of {list(WANDB_MODES)}, got {mode!r}")
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


def wandb_logger(
    save_dir: str,
    mode: str = "auto",
    project: str = "gan_lab",
    entity: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """A Lightning WandbLogger writing under ``save_dir``/wandb, online or offline by ``mode``."""
    mode = resolve_wandb_mode(mode)
    # W&B reads WANDB_MODE too; set it so that a child process (DDP ranks) agrees with us.
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        entity=entity,
        name=name,
        group=group,
        tags=list(tags or []),
        mode=mode,
        log_model=False,
        **kwargs,
    )
