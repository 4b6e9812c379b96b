"""GANModule: the adversarial training step, in Lightning's manual-optimization idiom.

One gan_lab "step" is one generator update. Each training batch runs ``n_disc`` discriminator
updates (fresh noise each, the same real batch) and then one generator update. Lightning's
``trainer.global_step`` counts every optimizer step, i.e. ``(n_disc + 1)`` per batch, so the
step budget is converted to generator steps in :mod:`gan_lab.training`. Loggers already get
batches (= generator steps) as their x-axis: Lightning logs ``_batches_that_stepped``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from gan_lab.losses import NonSaturatingLoss

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class GANModule(L.LightningModule):
    """Generator + discriminator + adversarial loss, trained by alternating updates."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        generator_optimizer: OptimizerFactory,
        discriminator_optimizer: OptimizerFactory,
        loss: Any | None = None,
        latent_dim: int = 100,
        n_disc: int = 1,
        num_fixed_samples: int = 64,
        seed: int = 0,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.loss = loss if loss is not None else NonSaturatingLoss()
        self.latent_dim = latent_dim
        self.n_disc = n_disc
        # The resolved run config, stored in every checkpoint: gan_lab.eval / gan_lab.sample
        # rebuild the networks and the data from it.
        self.config = config
        # Fixed noise for sample grids: a buffer, so it is checkpointed and follows the device.
        noise = torch.randn(
            num_fixed_samples, latent_dim, generator=torch.Generator().manual_seed(seed)
        )
        self.register_buffer("fixed_noise", noise)

    @property
    def generator_steps(self) -> int:
        """Generator updates so far (gan_lab's unit of training length)."""
        return self.trainer.global_step // (self.n_disc + 1)

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.generator_optimizer(self.generator.parameters()),
            self.discriminator_optimizer(self.discriminator.parameters()),
        ]

    def training_step(self, real: torch.Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        n = real.size(0)

        with self.toggled_optimizer(opt_d):
            for _ in range(self.n_disc):
                with torch.no_grad():
                    fake = self.generator(self.noise(n))
                real_logits = self.discriminator(real).float()
                fake_logits = self.discriminator(fake).float()
                d_loss = self.loss.discriminator(real_logits, fake_logits)
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(d_loss)
                opt_d.step()

        with self.toggled_optimizer(opt_g):
            gen_logits = self.discriminator(self.generator(self.noise(n))).float()
            g_loss = self.loss.generator(gen_logits)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            opt_g.step()

        self.log_dict(
            {
                "train/d_loss": d_loss.detach(),
                "train/g_loss": g_loss.detach(),
                "train/d_real": torch.sigmoid(real_logits.detach()).mean(),  # D(x)
                "train/d_fake": torch.sigmoid(fake_logits.detach()).mean(),  # D(G(z))
            },
            prog_bar=True,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gan_lab_config"] = self.config

    def validation_step(self, real: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """Generate as many images as the real batch holds; metric callbacks consume both."""
        return self.generator(self.noise(real.size(0))).float()
