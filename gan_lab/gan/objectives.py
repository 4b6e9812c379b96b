"""Adversarial losses on raw discriminator logits; ``conf/loss/`` picks one.

Each loss has two methods, ``discriminator(real_logits, fake_logits)`` and
``generator(fake_logits)``; adding a loss means adding a class here and a YAML file there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NonSaturatingLoss:
    """Goodfellow et al.'s GAN loss with the non-saturating generator objective (BCE on logits).

    ``binary_cross_entropy_with_logits`` is numerically stable and autocast runs it in fp32.
    """

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


class HingeLoss:
    """The hinge loss of SAGAN / BigGAN."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


class LeastSquaresLoss:
    """LSGAN (Mao et al., 2017) with targets 1 for real and 0 for fake."""

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((real_logits - 1.0).pow(2).mean() + fake_logits.pow(2).mean())

    def generator(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_logits - 1.0).pow(2).mean()
