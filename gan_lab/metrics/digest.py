"""Content hashes of network weights, for cache keys and integrity checks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from torch import nn


def state_dict_sha256(weights: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and tensor bytes, in key order.

    Two networks hash equal exactly when every parameter and buffer is bitwise equal, so a
    retrained classifier (or one trained on another machine) never matches a stale one.
    """
    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    h = hashlib.sha256()
    for key, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        # Bytes through a uint8 view: numpy has no bfloat16, and a view copies nothing.
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def extractor_weights_sha256(extractor: nn.Module) -> str:
    """The extractor's ``weights_sha256``, computed from its state dict (once) if it has none."""
    digest = getattr(extractor, "weights_sha256", None)
    if digest is None:
        digest = state_dict_sha256(extractor)
        extractor.weights_sha256 = digest
    return digest
