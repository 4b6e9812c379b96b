"""GANModule: the adversarial training step, in Lightning's manual-optimization idiom.

One gan_lab "step" is one generator update. Each training batch runs ``n_disc`` discriminator
updates (fresh noise each, the same real batch) and then one generator update. Lightning's
``trainer.global_step`` counts every optimizer step, i.e. ``(n_disc + 1)`` per batch, so the
step budget is converted to generator steps in :mod:`gan_lab.gan.fit`. Loggers already get
batches (= generator steps) as their x-axis: Lightning logs ``_batches_that_stepped``.

The losses come from the objective (:class:`gan_lab.gan.objectives.Objective`: adversarial loss,
regularizer, augmentation); this module steps the optimizers and handles precision, the
NaN policy and EMA.

No host synchronization per step (README "Performance"): with an optimizer that takes a
device-side ``found_inf`` flag (``torch.optim.Adam(fused=True)``, the default config, as
``GradScaler`` uses it), a non-finite loss skips its update on the device, and the flag is only
read on the host at logging intervals, before each checkpoint and at the end of training;
the training scalars go to the logger and progress bar at logging intervals only. Other
optimizers fall back to a host-side check per update.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

from gan_lab.errors import UserError
from gan_lab.gan.nonfinite import NonfiniteRecord, guarded_update
from gan_lab.gan.objectives import Objective
from gan_lab.gan.rng import collect_rng_states, set_rng_states

log = logging.getLogger(__name__)

# torch.compile's modes; module.compile=true is "default". reduce-overhead adds CUDA graphs.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Validation latents come in blocks of this many rows, each block from its own seeded
# generator: sample i always gets the same latent, whatever the sample count or world size.
VAL_NOISE_BLOCK = 1024
# channels_last=auto: NHWC on these devices (measured on CPUs, README "Performance"; cuDNN).
CHANNELS_LAST_DEVICE_TYPES = ("cpu", "cuda")

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class GANModule(L.LightningModule):
    """Generator + discriminator + objective, trained by alternating updates."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        generator_optimizer: OptimizerFactory,
        discriminator_optimizer: OptimizerFactory,
        objective: Objective,
        latent_dim: int,
        seed: int,
        *,
        n_disc: int,
        ema_decay: float | None,
        on_nonfinite: str,
        channels_last: bool | str,
        compile: bool | str,
        reuse_fakes: bool | str,
        num_fixed_samples: int,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        """The keyword-only settings have their defaults in one place, conf/module/gan.yaml;
        gan_lab.gan.fit builds the module from that group with ``instantiate``."""
        if isinstance(n_disc, bool) or not isinstance(n_disc, int) or n_disc < 1:
            raise UserError(f"module.n_disc must be an integer >= 1, got {n_disc!r}")
        _check_choice("reuse_fakes", reuse_fakes, ("auto",), "true, false or auto")
        if reuse_fakes is True and n_disc != 1:
            raise UserError(f"module.reuse_fakes=true needs module.n_disc=1 (got {n_disc}); "
                            "one fake batch feeds one D and one G step: use auto")  # fmt: skip
        super().__init__()
        self.automatic_optimization = False
        self.reuse_fakes = n_disc == 1 if reuse_fakes == "auto" else reuse_fakes
        self.generator = generator
        self.discriminator = discriminator
        self.generator_optimizer = generator_optimizer
        self.discriminator_optimizer = discriminator_optimizer
        self.objective = objective
        self.latent_dim = latent_dim
        self.n_disc = n_disc
        # The resolved run config, stored in every checkpoint: gan_lab.eval / gan_lab.sample
        # rebuild the networks and the data from it.
        self.config = run_config
        # Fixed noise for sample grids: a buffer, so it is checkpointed and follows the device.
        noise = torch.randn(
            num_fixed_samples, latent_dim, generator=torch.Generator().manual_seed(seed)
        )
        self.register_buffer("fixed_noise", noise)
        self.seed = seed
        self.on_nonfinite = on_nonfinite
        self.nonfinite = NonfiniteRecord(on_nonfinite)
        self.progress_scalars: dict[str, float] = {}  # training scalars as of the last log
        # EMA of the generator's weights (buffers copied): samples and evaluation use it.
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise UserError(f"module.ema_decay must be in (0, 1) or null, got {ema_decay!r}")
        self.ema_decay = ema_decay
        self.generator_ema = None
        if ema_decay is not None:
            self.generator_ema = copy.deepcopy(generator).requires_grad_(False)
        # Speed options (see README "Performance"): NHWC memory layout, torch.compile.
        _check_choice("channels_last", channels_last, ("auto",), "true, false or auto")
        self.channels_last_setting = channels_last
        self.channels_last = channels_last is True  # "auto" is resolved in configure_model
        modes = f"false, true or a torch.compile mode ({', '.join(COMPILE_MODES)})"
        _check_choice("compile", compile, COMPILE_MODES, modes)
        self.compile_networks = compile
        # Validation latents, VAL_NOISE_BLOCK rows per seeded block, grown on demand.
        self._val_noise_table = torch.empty(0, latent_dim)
        self._val_seen = 0
        # Global RNG states of a resumed checkpoint, applied just before its next step.
        self._rng_to_restore: dict[str, Any] | None = None

    @property
    def generator_steps(self) -> int:
        """Generator updates so far (gan_lab's unit of training length)."""
        return self.trainer.global_step // (self.n_disc + 1)

    @property
    def skipped_steps(self) -> int:
        """Updates skipped for a non-finite loss (policy skip), as of the last host check."""
        return self.nonfinite.skipped

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self.nonfinite.skipped = value

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples and metrics use: the EMA copy when EMA is on."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.sampling_generator(z)

    def configure_model(self) -> None:
        """Apply the speed options once the module is on its device (before DDP wraps it)."""
        self.channels_last = resolve_channels_last(self.channels_last_setting, self.device.type)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.compile_networks and not getattr(self, "_compiled", False):
            # In place (nn.Module.compile): parameter names and checkpoints stay the same.
            mode = None if self.compile_networks is True else self.compile_networks
            self.generator.compile(mode=mode)
            if self.objective.needs_double_backward:
                # torch.compile (aot_autograd) cannot differentiate twice, as the gradient
                # penalties do ("does not currently support double backward").
                log.info("compile: the regularizer needs double backward; compiling only the "
                         "generator")  # fmt: skip
            else:
                self.discriminator.compile(mode=mode)
            self._compiled = True

    def on_fit_start(self) -> None:
        # Every rank was seeded alike (so the networks start equal); the training latents must
        # differ per rank, or all ranks would train on the same fakes.
        if self.trainer.world_size > 1:
            torch.manual_seed(self.seed * 1000 + self.trainer.global_rank)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.generator_optimizer(self.generator.parameters()),
            self.discriminator_optimizer(self.discriminator.parameters()),
        ]

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.generator_ema is None:
            return
        ema = list(self.generator_ema.parameters())
        live = list(self.generator.parameters())
        torch._foreach_lerp_(ema, live, 1.0 - self.ema_decay)
        # Batch-norm statistics follow the live generator.
        buffers = zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True)
        for ema_buf, buf in buffers:
            ema_buf.copy_(buf)

    def training_step(self, real: torch.Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        G, D = self.generator, self.discriminator
        if self.channels_last and real.dim() == 4:  # images; auto also meets other data
            real = real.contiguous(memory_format=torch.channels_last)

        # The global index of each D update, from the checkpointed step counter: lazy
        # regularizers stay on their grid through a resume.
        first_d_step = self.generator_steps * self.n_disc
        # reuse_fakes: one G forward, with its graph, serves the D step (detached) and the G
        # step, as pytorch/examples' DCGAN does; made before the toggles, which would switch
        # off G's gradients during the D step.
        fake = G(self.noise(real.size(0))) if self.reuse_fakes else None
        with self.toggled_optimizer(opt_d):
            for i in range(self.n_disc):
                d_loss, d_logs = self.objective.discriminator_loss(
                    G, D, real, self.noise, d_step=first_d_step + i, fake=fake
                )
                guarded_update(self, opt_d, d_loss, 0)

        with self.toggled_optimizer(opt_g):
            g_loss, g_logs = self.objective.generator_loss(G, D, real, self.noise, fake=fake)
            guarded_update(self, opt_g, g_loss, 1)
        self._update_ema()

        # Only at logging intervals: reading scalars off the device is a host sync, and the
        # logger writes only then anyway. One stacked transfer for all of them.
        every = self.trainer.log_every_n_steps
        if every and (self.generator_steps % every == 0 or self.generator_steps == 1):
            self.nonfinite.check()
            # Each loss and regularizer names its own scalars (README "Losses").
            logs = {"train/d_loss": d_loss, "train/g_loss": g_loss, **d_logs, **g_logs}
            names = [k if k.startswith("train/") else f"train/{k}" for k in logs]
            values = torch.stack([v.detach().float().reshape(()) for v in logs.values()]).tolist()
            scalars = dict(zip(names, values, strict=True))
            scalars["train/skipped_steps"] = float(self.skipped_steps)
            # For the loggers; the progress bar shows these host copies (callbacks/progress_bar.py)
            # because a prog_bar=True scalar is read off the device on every batch.
            self.log_dict(scalars)
            self.progress_scalars = {k: v for k, v in scalars.items() if k != "train/skipped_steps"}

    def on_train_end(self) -> None:
        self.nonfinite.check()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A pending non-finite loss stops the run (policy stop) before this checkpoint is
        # written, and with skip its count must be in the saved state.
        self.nonfinite.check()
        checkpoint["gan_lab_config"] = self.config
        checkpoint["gan_lab_state"] = {
            "skipped_steps": self.skipped_steps,
            # Every rank's global RNG states (the training latents come from them), so that a
            # resumed run draws the same noise. Every rank runs this hook; rank 0 writes.
            "rng_per_rank": self._gather_rng_states(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("gan_lab_state") or {}
        self.skipped_steps = int(state.get("skipped_steps", 0))
        per_rank = state.get("rng_per_rank")
        if per_rank:
            self._rng_to_restore = {"per_rank": per_rank}

    def _gather_rng_states(self) -> list[dict[str, Any]]:
        states = collect_rng_states()
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1 or not torch.distributed.is_initialized():
            return [states]
        gathered: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, states)
        return gathered

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Checkpoints are written at a batch's start (gan_lab.gan.callbacks.LastCheckpoint), after
        # anything that ran between steps (validation draws from the RNG too): restoring the
        # states here, at the same point, continues the exact random stream.
        if self._rng_to_restore is None:
            return
        per_rank = self._rng_to_restore["per_rank"]
        self._rng_to_restore = None
        rank, world = self.trainer.global_rank, self.trainer.world_size
        if len(per_rank) != world:
            # Another world size: the per-rank streams cannot continue; seed them afresh.
            torch.manual_seed(self.seed * 1000 + rank + 7919 * self.generator_steps)
            return
        set_rng_states(per_rank[rank])

    def validation_noise(self, indices: torch.Tensor) -> torch.Tensor:
        """The latent vector of each validation sample index, the same in every run layout."""
        blocks = [self._val_noise_table]
        for block in range(len(self._val_noise_table) // VAL_NOISE_BLOCK,
                           int(indices.max()) // VAL_NOISE_BLOCK + 1):  # fmt: skip
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + block + 1)
            blocks.append(torch.randn(VAL_NOISE_BLOCK, self.latent_dim, generator=g))
        if len(blocks) > 1:  # grown once per new block, not per batch
            self._val_noise_table = torch.cat(blocks)
        return self._val_noise_table[indices.cpu()].to(self.device)

    def on_validation_epoch_start(self) -> None:
        self._val_seen = 0
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            # DDP syncs buffers only at training forwards, so batch-norm running statistics
            # drift apart per rank; score every rank with rank 0's (the checkpointed ones).
            for buffer in self.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def validation_step(self, real: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """Generate one image per real one; metric callbacks consume both.

        Validation sample k of this rank is global sample ``rank + k * world_size`` (the
        datamodule's unrepeated distributed sampler), and its latent depends only on that
        index: one process and N ranks score exactly the same generated images.
        """
        n = real.size(0)
        local = torch.arange(self._val_seen, self._val_seen + n)
        self._val_seen += n
        world, rank = self.trainer.world_size, self.trainer.global_rank
        z = self.validation_noise(rank + local * world)
        return self.sampling_generator(z).float()


def _check_choice(key: str, value: Any, choices: tuple[str, ...], allowed: str) -> None:
    """module.<key> is a boolean or one of ``choices``; anything else (1, "yes") is one line."""
    if not isinstance(value, bool) and value not in choices:
        raise UserError(f"module.{key} must be {allowed}, got {value!r}")


def resolve_channels_last(setting: bool | str, device_type: str) -> bool:
    """module.channels_last as applied on a device: true, false, or auto by device type."""
    if setting == "auto":
        return device_type in CHANNELS_LAST_DEVICE_TYPES
    return bool(setting)
