"""Global RNG states (torch, CUDA, numpy, Python) as plain tensors and lists.

Lightning's ``_collect_rng_states``/``_set_rng_states`` do the collecting; numpy's state is
converted to a tensor so that a checkpoint holding it loads with ``weights_only=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states


def collect_rng_states() -> dict[str, Any]:
    """This process's global RNG states, in types ``torch.load(weights_only=True)`` accepts."""
    states = _collect_rng_states(include_cuda=torch.cuda.is_available())
    kind, keys, pos, has_gauss, cached = states.pop("numpy")
    states["numpy"] = [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`collect_rng_states` returned."""
    states = dict(states)
    kind, keys, pos, has_gauss, cached = states.pop("numpy")
    states["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    if not torch.cuda.is_available():
        states.pop("torch.cuda", None)
    _set_rng_states(states)
