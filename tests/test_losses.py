"""The adversarial losses: values at known logits and the direction of their gradients."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lab.gan.objectives import HingeLoss, LeastSquaresLoss, NonSaturatingLoss, WassersteinLoss

LOSSES = [NonSaturatingLoss(), HingeLoss(), LeastSquaresLoss(), WassersteinLoss()]


def test_bce_at_zero_logits_is_log_two_per_term():
    loss = NonSaturatingLoss()
    zeros = torch.zeros(8)
    assert loss.discriminator(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert loss.generator(zeros).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("loss", LOSSES, ids=lambda x: type(x).__name__)
def test_discriminator_gradient_raises_real_and_lowers_fake_logits(loss):
    # At 0.5 every loss still pushes (LSGAN's fake term is flat at exactly 0).
    real = torch.full((4,), 0.5, requires_grad=True)
    fake = torch.full((4,), 0.5, requires_grad=True)
    loss.discriminator(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()


@pytest.mark.parametrize("loss", LOSSES, ids=lambda x: type(x).__name__)
def test_generator_gradient_raises_fake_logits(loss):
    fake = torch.zeros(4, requires_grad=True)
    loss.generator(fake).backward()
    assert (fake.grad < 0).all()
