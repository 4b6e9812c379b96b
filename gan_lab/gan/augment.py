"""DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): random, differentiable transforms of every image the discriminator sees.

``conf/augment/diffaugment.yaml`` turns it on; :class:`gan_lab.gan.objectives.Objective` applies
it to real and fake images alike, in the D step, the G step and the regularizer's passes. Each call
draws fresh parameters per image from the global torch RNG of the images' device, which
gan_lab's checkpoints capture, so a resumed run draws the same augmentations. The ops follow
the paper's reference: ``color`` (brightness, saturation, contrast), ``translation`` (shift by
up to 1/8 of the image size, zero fill) and ``cutout`` (a zeroed square of half the size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_lab.errors import UserError


def _per_image(x: Tensor) -> Tensor:
    """One uniform [0, 1) draw per image, broadcastable over (C, H, W)."""
    return torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)


def brightness(x: Tensor) -> Tensor:
    """Add an offset in [-0.5, 0.5)."""
    return x + (_per_image(x) - 0.5)


def saturation(x: Tensor) -> Tensor:
    """Scale each pixel's distance from its channel mean by [0, 2) (no-op on one channel)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_per_image(x) * 2) + mean


def contrast(x: Tensor) -> Tensor:
    """Scale the distance from the image mean by [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_image(x) + 0.5) + mean


def translation(x: Tensor, ratio: float = 1 / 8) -> Tensor:
    """Shift each image by up to ``ratio`` of its height and width; uncovered pixels are 0."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio), int(w * ratio)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
    padded = F.pad(x, [max_dx, max_dx, max_dy, max_dy])
    # Output pixel (i, j) of image b reads padded pixel (i + max_dy + dy, j + max_dx + dx).
    rows = torch.arange(h, device=x.device).view(1, h, 1) + max_dy + dy
    cols = torch.arange(w, device=x.device).view(1, 1, w) + max_dx + dx
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 1 / 2) -> Tensor:
    """Zero a square of ``ratio`` times the image size at a random centre (clipped at edges)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio), int(w * ratio)
    # Centres over the whole image (one more position for even sizes, as in the reference).
    top = torch.randint(0, h + 1 - size_h % 2, (n, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w + 1 - size_w % 2, (n, 1, 1), device=x.device) - size_w // 2
    i = torch.arange(h, device=x.device).view(1, h, 1)
    j = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (i >= top) & (i < top + size_h) & (j >= left) & (j < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS: dict[str, tuple[Callable[[Tensor], Tensor], ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


class DiffAugment:
    """``DiffAugment(policy)(images)``: the policy's ops in its order, on a (N, C, H, W) batch.

    ``policy``: comma-separated words of ``color``, ``translation``, ``cutout`` (or a list of
    them). The output keeps the input's shape, dtype, device and memory format (NCHW or
    channels_last), and is differentiable with respect to the input.
    """

    def __init__(self, policy: str | Sequence[str] = "color,translation,cutout") -> None:
        words = policy.split(",") if isinstance(policy, str) else list(policy)
        words = [str(w).strip() for w in words if str(w).strip()]
        unknown = [w for w in words if w not in OPS]
        if unknown or not words:
            raise UserError(
                f"augment.policy={','.join(words)!r}: "
                + (f"unknown word {unknown[0]!r}" if unknown else "no augmentation named")
                + f"; use comma-separated words of: {', '.join(OPS)} (or augment=none)"
            )
        self.policy = words

    def __call__(self, x: Tensor) -> Tensor:
        nhwc = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        fmt = torch.channels_last if nhwc and not x.is_contiguous() else torch.contiguous_format
        for word in self.policy:
            for op in OPS[word]:
                x = op(x)
        return x.contiguous(memory_format=fmt)

    def __repr__(self) -> str:
        return f"DiffAugment(policy={','.join(self.policy)!r})"
