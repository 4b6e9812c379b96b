"""The training objective: adversarial losses, regularizers, and the Objective over them.

``conf/loss/`` picks an adversarial loss on raw discriminator logits, ``conf/regularizer/`` a
penalty on the discriminator, ``conf/augment/`` the augmentation D sees (gan_lab.gan.augment).
:class:`Objective` combines them and computes each step's losses from G, D, the real batch and
a latent sampler (the split of NVlabs/stylegan2-ada-pytorch's loss object); GANModule steps
the optimizers and handles precision, n_disc, NaN policy and EMA.

Adding a loss: a subclass of :class:`AdversarialLoss` here and a YAML file in conf/loss/.
Adding a regularizer: a subclass of :class:`Regularizer` here and a YAML in conf/regularizer/.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_lab.errors import UserError

Logs = dict[str, Tensor]
Critic = Callable[[Tensor], Tensor]  # images -> fp32 logits (D after any augmentation)


# ---------------------------------------------------------------------------- losses
class AdversarialLoss:
    """A loss on logits: ``discriminator(real_logits, fake_logits)`` and
    ``generator(fake_logits)``; ``logs`` names the scalars worth plotting for it (logged as
    ``train/<name>``, from the discriminator step)."""

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def generator(self, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def logs(self, real_logits: Tensor, fake_logits: Tensor) -> Logs:
        return {"d_real_logit": real_logits.mean(), "d_fake_logit": fake_logits.mean()}


class NonSaturatingLoss(AdversarialLoss):
    """Goodfellow et al.'s GAN loss with the non-saturating generator objective (BCE on logits).

    ``binary_cross_entropy_with_logits`` is numerically stable and autocast runs it in fp32.
    """

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

    def generator(self, fake_logits: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

    def logs(self, real_logits: Tensor, fake_logits: Tensor) -> Logs:
        # D's probability that an image is real: D(x) and D(G(z)) in Goodfellow et al.
        return {
            "d_real_prob": torch.sigmoid(real_logits).mean(),
            "d_fake_prob": torch.sigmoid(fake_logits).mean(),
        }


class HingeLoss(AdversarialLoss):
    """The hinge loss of SAGAN / BigGAN."""

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def generator(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


class LeastSquaresLoss(AdversarialLoss):
    """LSGAN (Mao et al., 2017) with targets 1 for real and 0 for fake."""

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * ((real_logits - 1.0).pow(2).mean() + fake_logits.pow(2).mean())

    def generator(self, fake_logits: Tensor) -> Tensor:
        return 0.5 * (fake_logits - 1.0).pow(2).mean()


class WassersteinLoss(AdversarialLoss):
    """The WGAN critic loss (Arjovsky et al., 2017). Its critic must be kept Lipschitz: use it
    with ``regularizer=gp`` (WGAN-GP, Gulrajani et al., 2017); nothing here clips weights."""

    def discriminator(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def generator(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()

    def logs(self, real_logits: Tensor, fake_logits: Tensor) -> Logs:
        logs = super().logs(real_logits, fake_logits)
        # The critic's estimate of the Wasserstein-1 distance (up to the Lipschitz constant).
        logs["wasserstein_estimate"] = logs["d_real_logit"] - logs["d_fake_logit"]
        return logs


# ---------------------------------------------------------------------------- regularizers
class Regularizer:
    """A penalty on the discriminator, added to its loss on the D steps where ``active``.

    ``penalty(critic, real, fake)`` returns the term to add (already weighted) and the scalars
    to log. It runs in fp32 (see :meth:`Objective.discriminator_loss`). ``double_backward``:
    the penalty differentiates through D's input gradient (``create_graph=True``), which
    torch.compile cannot do; GANModule then leaves D uncompiled.
    """

    every = 1
    double_backward = True

    def active(self, d_step: int) -> bool:
        return d_step % self.every == 0

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        raise NotImplementedError


def input_gradient(critic: Critic, x: Tensor) -> Tensor:
    """d sum(critic(x)) / dx per sample, kept in the graph so that D's parameters get the
    gradient of any penalty on it."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1)


class R1(Regularizer):
    """R1 (Mescheder et al., 2018): ``gamma / 2 * E ||grad D(x)||^2`` on real images.

    Lazy regularization (StyleGAN2): computed only on D steps ``d_step % every == 0`` and then
    multiplied by ``every``, so its average weight is unchanged; ``every=1`` is plain R1.
    Logs ``r1``, the unweighted ``E ||grad D(x)||^2`` (its latest value between lazy steps).
    """

    def __init__(self, gamma: float = 10.0, every: int = 16) -> None:
        if every < 1:
            raise UserError(f"regularizer.every must be at least 1, got {every}")
        self.gamma, self.every = float(gamma), int(every)

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        r1 = input_gradient(critic, real).square().sum(1).mean()
        return self.every * self.gamma / 2 * r1, {"r1": r1.detach()}


class GradientPenalty(Regularizer):
    """WGAN-GP's penalty (Gulrajani et al., 2017): ``weight * E (||grad D(x_hat)|| - 1)^2`` at
    random points ``x_hat`` on lines between real and fake images (the paper's lambda = 10).
    Logs ``gp``, the unweighted ``E (||grad D(x_hat)|| - 1)^2``."""

    def __init__(self, weight: float = 10.0) -> None:
        self.weight = float(weight)

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> tuple[Tensor, Logs]:
        shape = (real.size(0),) + (1,) * (real.dim() - 1)
        eps = torch.rand(shape, device=real.device, dtype=real.dtype)
        x_hat = eps * real.detach() + (1 - eps) * fake.detach()
        gp = (input_gradient(critic, x_hat).norm(2, dim=1) - 1).square().mean()
        return self.weight * gp, {"gp": gp.detach()}


# ---------------------------------------------------------------------------- objective
class Objective:
    """The losses of one training step, computed from G, D, the real batch and ``latents``
    (a callable ``n -> z``); GANModule does the backward passes and optimizer steps.

    ``augment`` (e.g. :class:`gan_lab.gan.augment.DiffAugment`) is applied to every image D sees:
    reals and fakes, in the D step, the G step and the regularizer's passes.
    """

    def __init__(
        self,
        loss: AdversarialLoss | None = None,
        regularizer: Regularizer | None = None,
        augment: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.loss = loss if loss is not None else NonSaturatingLoss()
        self.regularizer = regularizer
        self.augment = augment
        self._regularizer_logs: Logs = {}  # the latest, logged until the next lazy step

    @property
    def needs_double_backward(self) -> bool:
        return self.regularizer is not None and self.regularizer.double_backward

    def critic(self, D: nn.Module) -> Critic:
        """D on augmented images, with fp32 logits (losses on low-precision logits lose bits)."""
        augment = self.augment
        return lambda x: D(augment(x) if augment is not None else x).float()

    def discriminator_loss(
        self, G: nn.Module, D: nn.Module, real: Tensor, latents: Callable[[int], Tensor],
        d_step: int, fake: Tensor | None = None,
    ) -> tuple[Tensor, Logs]:  # fmt: skip
        """D's loss (with the regularizer's term on its steps) and what to log.

        ``d_step``: the global index of this discriminator update, counted from 0.
        ``fake``: generated images to use (detached here) instead of a fresh batch.
        """
        if fake is None:
            with torch.no_grad():
                fake = G(latents(real.size(0)))
        fake = fake.detach()
        critic = self.critic(D)
        real_logits, fake_logits = critic(real), critic(fake)
        loss = self.loss.discriminator(real_logits, fake_logits)
        logs = self.loss.logs(real_logits.detach(), fake_logits.detach())
        if self.regularizer is not None and self.regularizer.active(d_step):
            # The penalty pass runs in fp32, autocast off: its input gradients come from an
            # inner autograd.grad that the fp16 GradScaler does not scale, so in fp16 they
            # (and their squares, e.g. 1e-4^2) flush to zero, or large ones overflow at 65504,
            # and the penalty silently vanishes or turns inf. Mixed precision keeps D's
            # weights in fp32, so this pass costs one fp32 forward and double backward.
            with torch.autocast(real.device.type, enabled=False):
                term, reg_logs = self.regularizer.penalty(critic, real, fake.to(real.dtype))
            loss = loss + term
            self._regularizer_logs = reg_logs
        logs.update(self._regularizer_logs)
        return loss, logs

    def generator_loss(
        self, G: nn.Module, D: nn.Module, real: Tensor, latents: Callable[[int], Tensor],
        fake: Tensor | None = None,
    ) -> tuple[Tensor, Logs]:  # fmt: skip
        """G's loss on a fresh batch of fakes, or on ``fake`` (generated with G's graph), and
        what to log (nothing beyond the loss here)."""
        if fake is None:
            fake = G(latents(real.size(0)))
        fake_logits = self.critic(D)(fake)
        return self.loss.generator(fake_logits), {}
