"""Read gan_lab checkpoints back: the generator and the run config stored with it.

A checkpoint may come from anyone, so reading one must never run code from it: the file is
unpickled with ``weights_only`` (tensors and plain containers only), and the run config it
carries is instantiated only through :func:`safe_instantiate`, which refuses any ``_target_``
outside gan_lab, ``torch.nn`` and ``torch.optim``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra._internal.utils import _locate
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_lab.errors import UserError

# What a checkpoint's config may instantiate: our own code and torch's layers and optimizers.
ALLOWED_TARGET_PREFIXES = ("gan_lab.", "torch.nn.", "torch.optim.")


def resolve_ckpt_path(ckpt_path: str) -> Path:
    """A checkpoint file, or a run directory (its ``checkpoints/last.ckpt``)."""
    path = Path(str(ckpt_path)).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}; pass ckpt_path=<file.ckpt or run directory>")
    return path


def safe_load(path: Path, mmap: bool = False) -> Any:
    """``torch.load`` with ``weights_only`` (nothing in the file runs); UserError, in one line,
    for a file that is damaged or holds more than tensors and plain containers.

    ``mmap`` reads lazily: checking a large checkpoint before a resume then costs little.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:
        if "weights only load failed" in str(err).lower():
            # torch's weights-only unpickler refused a global: the file holds more than
            # tensors and plain containers, and loading it fully could run code from it.
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            detail = next((ln for ln in lines if "GLOBAL" in ln), lines[-1])
            raise UserError(
                f"checkpoint {path} cannot be loaded safely ({detail[:160]}); it holds Python "
                "objects beyond tensors and plain containers: use a checkpoint written by "
                "gan_lab training, or re-save it with only tensors, numbers and strings"
            ) from None
        raise UserError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {str(err)[:120]}); "
            "it may be truncated: use another one (e.g. an earlier run's last.ckpt), or start "
            "the run again"
        ) from None


def check_checkpoint_readable(path: Path) -> None:
    """UserError unless ``path`` loads safely (see :func:`safe_load`): checked before a resume,
    since Lightning would otherwise fail on it with a traceback after the run had started."""
    safe_load(path, mmap=True)


def load_checkpoint(ckpt_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(checkpoint dict, run config) of a gan_lab checkpoint; UserError if it is not one."""
    path = resolve_ckpt_path(ckpt_path)
    ckpt = safe_load(path)
    config = ckpt.get("gan_lab_config") if isinstance(ckpt, dict) else None
    if not isinstance(config, dict) or not config or "state_dict" not in ckpt:
        raise UserError(f"{path} is not a gan_lab checkpoint (no gan_lab_config/state_dict)")
    return ckpt, config


def _nodes(node: Any, key_path: str) -> Iterator[tuple[str, Any]]:
    """Every (key path, value) below ``node``, ``node`` itself first."""
    yield key_path, node
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _nodes(value, f"{key_path}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _nodes(value, f"{key_path}[{i}]")


def _check_target(target: Any, key_path: str) -> None:
    allowed = ", ".join(ALLOWED_TARGET_PREFIXES)
    refuse = f"{key_path}._target_ is {target!r}, outside {allowed}: refusing to instantiate it"
    if not isinstance(target, str) or not target.startswith(ALLOWED_TARGET_PREFIXES):
        raise UserError(f"{refuse} (use a config written by gan_lab training)")
    try:
        # The lookup instantiate itself makes (get_object would also log the failure);
        # it imports only modules under the allowed prefixes.
        obj = _locate(target)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
        raise UserError(f"{key_path}._target_ {target!r} cannot be found ({first})") from None
    # A name can reach out of the allowed packages through a module they import
    # (gan_lab.data.registry.subprocess.run): judge where the object is defined.
    module = getattr(obj, "__module__", None)
    if not callable(obj) or not f"{module}.".startswith(ALLOWED_TARGET_PREFIXES):
        raise UserError(f"{refuse} (it is {module}.{getattr(obj, '__qualname__', '?')})")


def safe_instantiate(config: Mapping[str, Any] | DictConfig, where: str = "config") -> Any:
    """Hydra ``instantiate`` of an untrusted config, after checking all of it.

    Every ``_target_`` anywhere in ``config`` must name a callable defined under
    ``ALLOWED_TARGET_PREFIXES``, and no value may be an interpolation (``${...}``): stored
    configs are resolved, and a resolver such as ``oc.create`` could build a new ``_target_``
    after the check. A UserError names the first offending key path (``where`` prefixes it).
    Nothing is instantiated unless the whole config passes.
    """
    if not isinstance(config, Mapping):
        raise UserError(f"{where} is a {type(config).__name__}, not a config mapping")
    try:  # plain containers, interpolations left as written so that they are seen
        config = OmegaConf.to_container(OmegaConf.create(config), resolve=False)
    except Exception as err:  # values a config cannot hold (tensors, bytes, ...)
        raise UserError(f"{where} is not a valid config ({type(err).__name__})") from None
    for key_path, value in _nodes(config, where):
        if isinstance(value, str) and "${" in value:
            raise UserError(
                f"{key_path} is an interpolation ({value[:80]!r}); a stored config is resolved, "
                "so this one was edited: refusing to instantiate it"
            )
        if isinstance(value, Mapping) and "_target_" in value:
            _check_target(value["_target_"], key_path)
    return instantiate(config)


def load_generator(
    ckpt_path: str, ema: bool = True
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """(generator in eval mode, run config, checkpoint) rebuilt from a checkpoint.

    With ``ema`` (the default) a run trained with ``ema_decay`` gives its EMA weights, the
    ones its samples and validation metrics used.
    """
    ckpt, config = load_checkpoint(ckpt_path)
    where = f"checkpoint {resolve_ckpt_path(ckpt_path)}: gan_lab_config.model.generator"
    generator = safe_instantiate(config["model"]["generator"], where=where)
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


def stored_n_disc(config: Mapping[str, Any]) -> int:
    """``n_disc`` of a run config stored in a checkpoint: ``module.n_disc``, or the root key
    that held it before the module group existed."""
    module = config.get("module") or {}
    return int(module.get("n_disc", config.get("n_disc", 1)))
