"""fp16 autocast with one GradScaler shared by the D and G optimizers (``16-mixed``, the CUDA
default before Ampere), run on the CPU: Lightning maps ``precision="16-mixed"`` to bf16 there, so
these tests hand the Trainer the same plugin with a CPU GradScaler."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from test_checkpointing import NaNAfter, ToyData, _module

from gan_lab.gan.objectives import Objective


def _fp16_trainer(steps: int, init_scale: float) -> L.Trainer:
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    return L.Trainer(max_steps=2 * steps, accelerator="cpu", logger=False,
                     plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0)  # fmt: skip


def _adam_steps(module, which: int) -> int:
    optimizer = module.trainer.optimizers[which]
    return int(next(iter(optimizer.state.values()))["step"])


@pytest.mark.parametrize("fused", [False, True])
def test_gradient_overflow_skips_that_step_and_backs_off(fused):
    """A scale of 2**40 overflows fp16 gradients: from the first D step on, each overflowing
    update is skipped (weights and Adam's step count untouched) and the scale halves, without
    Lightning's "No inf checks were recorded" failure; it is not a NaN-policy event."""
    module = _module(fused=fused)
    start = module.discriminator[0].weight.detach().clone()
    trainer = _fp16_trainer(40, init_scale=2.0**40)
    trainer.fit(module, datamodule=ToyData())
    scale = trainer.precision_plugin.scaler.get_scale()
    assert scale < 2.0**40  # backed off
    assert module.generator_steps == 40
    assert module.skipped_steps == 0  # finite losses: the scaler's business only
    d_steps, g_steps = _adam_steps(module, 1), _adam_steps(module, 0)
    assert 0 < d_steps < 40 and 0 < g_steps < 40  # some updates skipped, later ones applied
    assert torch.isfinite(module.discriminator[0].weight).all()
    assert not torch.equal(module.discriminator[0].weight, start)


@pytest.mark.parametrize("fused", [False, True])
def test_nonfinite_loss_under_the_scaler_follows_the_policy(fused):
    module = _module(fused=fused, objective=Objective(NaNAfter(3)), on_nonfinite="skip")
    trainer = _fp16_trainer(6, init_scale=2.0**8)
    trainer.fit(module, datamodule=ToyData())
    assert module.skipped_steps == 4
    assert _adam_steps(module, 1) == 2  # D steps 3..6 were skipped
    assert torch.isfinite(module.discriminator[0].weight).all()
