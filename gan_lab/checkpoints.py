"""Read gan_lab checkpoints back: the generator and the run config stored with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from gan_lab.errors import UserError


def resolve_ckpt_path(ckpt_path: str) -> Path:
    """A checkpoint file, or a run directory (its ``checkpoints/last.ckpt``)."""
    path = Path(str(ckpt_path)).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; pass ckpt_path=<file.ckpt or run directory>")
    return path


def check_checkpoint_readable(path: Path) -> None:
    """UserError unless ``path`` loads as a checkpoint of plain tensors and containers.

    Memory-mapped, so checking a large checkpoint before a resume costs little; Lightning
    would otherwise fail on it with a traceback after the run had started.
    """
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise UserError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err)[:120]}); it may "
            "be truncated or not a gan_lab checkpoint: resume from another one "
            "(ckpt_path=<file>) or start the run again"
        ) from None


def load_checkpoint(ckpt_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(checkpoint dict, run config) of a gan_lab checkpoint; UserError if it is not one."""
    path = resolve_ckpt_path(ckpt_path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err)[:120]}); "
            "it may be truncated: use another one (e.g. the run's last.ckpt)"
        ) from None
    config = ckpt.get("gan_lab_config") if isinstance(ckpt, dict) else None
    if not config or "state_dict" not in ckpt:
        raise UserError(f"{path} is not a gan_lab checkpoint (no gan_lab_config/state_dict)")
    return ckpt, config


def load_generator(
    ckpt_path: str, ema: bool = True
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """(generator in eval mode, run config, checkpoint) rebuilt from a checkpoint.

    With ``ema`` (the default) a run trained with ``ema_decay`` gives its EMA weights, the
    ones its samples and validation metrics used.
    """
    ckpt, config = load_checkpoint(ckpt_path)
    generator = instantiate(OmegaConf.create(config["model"]["generator"]))
    has_ema = any(k.startswith("generator_ema.") for k in ckpt["state_dict"])
    prefix = "generator_ema." if ema and has_ema else "generator."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    try:
        generator.load_state_dict(state)
    except RuntimeError as err:
        raise UserError(
            f"checkpoint generator does not match its config: {str(err)[:160]}"
        ) from None
    return generator.eval(), config, ckpt
