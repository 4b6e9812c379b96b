"""Checkpoint files are written atomically; EMA and the divergence guard in GANModule."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from conftest import module_options
from torch import nn

from gan_lab.errors import UserError
from gan_lab.gan.callbacks import AtomicCheckpointIO
from gan_lab.gan.module import GANModule, resolve_channels_last
from gan_lab.gan.objectives import NonSaturatingLoss, Objective


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("killed mid-save")


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="killed mid-save"):
        # torch.save has written part of the file when pickling reaches this object.
        io.save_checkpoint({"w": torch.zeros(100_000), "z": Unpicklable()}, path)
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=False)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


class ToyData(L.LightningDataModule):
    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(64, 4), batch_size=8)


class NaNAfter(NonSaturatingLoss):
    """The usual loss, NaN for the discriminator from its ``n``-th call on."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.calls, self.n = 0, n

    def discriminator(self, real_logits, fake_logits):
        self.calls += 1
        loss = super().discriminator(real_logits, fake_logits)
        return loss * math.nan if self.calls >= self.n else loss


def _module(fused: bool = False, **kwargs) -> GANModule:
    torch.manual_seed(0)
    opt = lambda params: torch.optim.Adam(params, lr=1e-2, fused=fused)  # noqa: E731
    return GANModule(
        generator=nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4)),
        discriminator=nn.Sequential(nn.Linear(4, 1), nn.Flatten(0)),
        generator_optimizer=opt,
        discriminator_optimizer=opt,
        objective=kwargs.pop("objective", Objective()),
        latent_dim=2,
        seed=0,
        **module_options(num_fixed_samples=4, **kwargs),
    )


def _trainer(steps: int) -> L.Trainer:
    return L.Trainer(max_steps=2 * steps, accelerator="cpu", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0)  # fmt: skip


def test_ema_tracks_the_generator_and_is_what_samples_use():
    module = _module(ema_decay=0.5)
    start = [p.detach().clone() for p in module.generator.parameters()]
    _trainer(3).fit(module, datamodule=ToyData())
    live = list(module.generator.parameters())
    ema = list(module.generator_ema.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(live, ema, strict=True))
    assert all(not torch.equal(a, s) for a, s in zip(ema, start, strict=True))  # it moved toward G
    assert module.sampling_generator is module.generator_ema
    assert all(not p.requires_grad for p in ema)
    state = module.state_dict()
    assert any(k.startswith("generator_ema.") for k in state)  # saved in checkpoints
    assert torch.equal(module.generator_ema[1].running_mean, module.generator[1].running_mean)


def test_bad_ema_decay_is_a_user_error():
    with pytest.raises(UserError, match="ema_decay"):
        _module(ema_decay=1.5)


# fused=False: a host check of each loss before its update. fused=True (the default config):
# the update is skipped on the device through fused Adam's found_inf flag, and the record is
# read at logging intervals (here: generator step 1, and the end of training).
@pytest.mark.parametrize("fused", [False, True])
def test_nonfinite_loss_stops_before_the_update(fused):
    module = _module(fused=fused, objective=Objective(NaNAfter(3)))
    trainer = _trainer(10)
    with pytest.raises(UserError, match="discriminator loss became nan at generator step 2"):
        trainer.fit(module, datamodule=ToyData())
    assert torch.isfinite(module.discriminator[0].weight).all()  # never stepped with NaN
    # Either way the weights are those of generator step 2, the last good one (BatchNorm's
    # running statistics move with every forward pass, so only parameters compare).
    reference = _module(fused=fused)
    _trainer(2).fit(reference, datamodule=ToyData())
    weights = dict(module.named_parameters())
    for name, value in reference.named_parameters():
        assert torch.equal(weights[name], value), name
    assert module.generator_steps == (10 if fused else 2)  # fused: stopped at the check


@pytest.mark.parametrize("fused", [False, True])
def test_nonfinite_loss_skip_counts_steps_and_keeps_weights_finite(fused):
    module = _module(fused=fused, objective=Objective(NaNAfter(3)), on_nonfinite="skip")
    before = module.discriminator[0].weight.detach().clone()
    _trainer(6).fit(module, datamodule=ToyData())
    assert module.generator_steps == 6  # the budget still counts every batch
    assert module.skipped_steps == 4  # D steps 3..6 were NaN
    assert torch.isfinite(module.discriminator[0].weight).all()
    assert not torch.equal(module.discriminator[0].weight, before)  # steps 1-2 happened
    # Skipped updates leave Adam's step count alone, as GradScaler's skips do.
    state = module.trainer.optimizers[1].state[module.discriminator[0].weight]
    assert int(state["step"]) == 2


def _image_module(**options) -> GANModule:
    """A GANModule over tiny convolutional networks and 3x4x4 images."""
    return GANModule(
        generator=nn.Sequential(nn.Linear(2, 16), nn.Unflatten(1, (1, 4, 4)),
                                nn.Conv2d(1, 3, 3, padding=1)),
        discriminator=nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(16, 1),
                                    nn.Flatten(0)),
        generator_optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
        discriminator_optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
        objective=Objective(), latent_dim=2, seed=0,
        **module_options(num_fixed_samples=4, **options),
    )  # fmt: skip


class Images(L.LightningDataModule):
    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(32, 3, 4, 4), batch_size=8)


@pytest.mark.parametrize("setting, nhwc", [(True, True), ("auto", True), (False, False)])
def test_channels_last_option_trains_in_nhwc(setting, nhwc):
    """module.channels_last: true and auto (on a CPU) train both networks in NHWC, false not."""
    module = _image_module(channels_last=setting)
    _trainer(2).fit(module, datamodule=Images())
    weight = module.discriminator[0].weight  # 4x3x3x3: the two layouts differ (G's has C=1)
    assert weight.is_contiguous(memory_format=torch.channels_last) is nhwc
    assert weight.is_contiguous() is not nhwc
    assert module.channels_last is nhwc
    assert module.generator_steps == 2


def test_channels_last_auto_per_device_type_and_bad_values():
    assert resolve_channels_last("auto", "cpu") and resolve_channels_last("auto", "cuda")
    assert not resolve_channels_last("auto", "mps")
    assert resolve_channels_last(True, "mps") and not resolve_channels_last(False, "cuda")
    for bad in ("yes", 1, 2, None):
        with pytest.raises(UserError, match="module.channels_last must be true, false or auto"):
            _image_module(channels_last=bad)


@pytest.mark.slow
def test_compile_option_trains_and_keeps_checkpoint_names(tmp_path):
    """compile=true runs the networks through torch.compile (inductor, a C++ compiler on CPU)
    in place: training steps happen, and the checkpoint's parameter names are the plain ones."""
    from torch._dynamo.utils import counters

    counters.clear()
    module = _image_module(compile=True)
    before = module.generator[0].weight.detach().clone()
    trainer = _trainer(2)
    trainer.fit(module, datamodule=Images())
    assert module.generator_steps == 2
    assert module._compiled and module.generator._compiled_call_impl is not None
    assert counters["stats"]["unique_graphs"] >= 2  # dynamo captured graphs of both networks
    assert not torch.equal(module.generator[0].weight, before)
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    state = torch.load(tmp_path / "c.ckpt", weights_only=False)["state_dict"]
    assert set(state) == set(_image_module().state_dict())


def test_compile_takes_a_torch_compile_mode(monkeypatch):
    modes = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: modes.append(kw["mode"]))
    _image_module(compile="max-autotune-no-cudagraphs").configure_model()
    _image_module(compile=True).configure_model()
    assert modes == ["max-autotune-no-cudagraphs"] * 2 + [None] * 2  # G and D; true: default
    with pytest.raises(UserError, match="module.compile must be false, true or a torch.compile"):
        _image_module(compile="fastest")


@pytest.mark.slow
def test_each_built_module_compiles_afresh(tmp_path):
    """Jobs of one multirun process each compile their networks: build_module resets dynamo,
    whose shared nn.Module._call_impl cache would otherwise fill up and fall back to eager."""
    from conftest import compose_config
    from torch._dynamo.utils import counters

    from gan_lab.gan.fit import build_module

    cfg = compose_config(["module.compile=true", "model.latent_dim=8"], tmp_path)
    z = torch.randn(2, 8)
    # config.patch, not monkeypatch: monkeypatch's undo deletes the entry from torch's config
    # module, and every later torch.compile in the session fails ("recompile_limit does not
    # exist").
    with torch._dynamo.config.patch(recompile_limit=1):
        for _job in range(2):
            counters.clear()
            module = build_module(cfg)
            module.configure_model()
            module.generator(z)
            assert counters["stats"]["unique_graphs"] == 1  # compiled, not the eager fallback
