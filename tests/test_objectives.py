"""The objective: regularizers against a direct autograd computation, lazy R1, what each loss
logs, augmentation of every D input, and GANModule's use of them (d_step, compile,
channels_last, EMA); real training steps on MNIST for each kind of objective."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from conftest import module_options
from torch import nn

from gan_lab.errors import UserError
from gan_lab.gan.augment import DiffAugment
from gan_lab.gan.module import GANModule
from gan_lab.gan.objectives import (
    R1,
    GradientPenalty,
    HingeLoss,
    NonSaturatingLoss,
    Objective,
    WassersteinLoss,
)

N, LATENT = 6, 3


def _nets() -> tuple[nn.Module, nn.Module]:
    """A tiny G (latent -> 2x5x5) and D; D has smooth activations so that the penalties'
    second derivatives are not trivially zero."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(LATENT, 50), nn.Tanh(), nn.Unflatten(1, (2, 5, 5)))
    D = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Softplus(), nn.Flatten(), nn.Linear(27, 1),
                      nn.Flatten(0))  # fmt: skip
    return G, D


def _batch():
    torch.manual_seed(1)
    real = torch.randn(N, 2, 5, 5)
    z = torch.randn(N, LATENT)
    return real, (lambda n: z[:n])


def _bce_by_hand(D, real, fake):
    r, f = D(real), D(fake)
    return F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + (
        F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    )


def _assert_same_loss_and_d_gradients(ours, by_hand, D):
    assert ours.item() == pytest.approx(by_hand.item(), rel=1e-6)
    params = list(D.parameters())
    g_ours = torch.autograd.grad(ours, params)
    g_hand = torch.autograd.grad(by_hand, params)
    for a, b in zip(g_ours, g_hand, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("every,d_step", [(1, 0), (1, 7), (4, 8)])
def test_r1_equals_direct_autograd(every, d_step):
    G, D = _nets()
    real, latents = _batch()
    objective = Objective(NonSaturatingLoss(), regularizer=R1(gamma=3.0, every=every))
    loss, logs = objective.discriminator_loss(G, D, real, latents, d_step=d_step)

    fake = G(latents(N)).detach()
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    r1 = (grad**2).sum(dim=(1, 2, 3)).mean()
    by_hand = _bce_by_hand(D, real, fake) + every * 3.0 / 2 * r1
    _assert_same_loss_and_d_gradients(loss, by_hand, D)
    assert logs["r1"].item() == pytest.approx(r1.item(), rel=1e-6)


def test_lazy_r1_is_not_computed_off_its_grid():
    G, D = _nets()
    real, latents = _batch()
    calls = []
    D.register_forward_hook(lambda *_: calls.append(1))
    objective = Objective(NonSaturatingLoss(), regularizer=R1(gamma=3.0, every=4))
    for d_step in (1, 2, 3, 5):
        calls.clear()
        loss, _ = objective.discriminator_loss(G, D, real, latents, d_step=d_step)
        assert len(calls) == 2  # the real and the fake batch: no penalty pass
        plain = _bce_by_hand(D, real, G(latents(N)).detach())
        assert loss.item() == pytest.approx(plain.item(), rel=1e-6)
    calls.clear()
    loss, _ = objective.discriminator_loss(G, D, real, latents, d_step=4)
    assert len(calls) == 3  # the penalty's own fp32 pass on reals
    assert loss.item() > plain.item()


def test_gradient_penalty_equals_direct_autograd():
    G, D = _nets()
    real, latents = _batch()
    objective = Objective(WassersteinLoss(), regularizer=GradientPenalty(weight=10.0))
    torch.manual_seed(5)
    loss, logs = objective.discriminator_loss(G, D, real, latents, d_step=3)

    fake = G(latents(N)).detach()
    torch.manual_seed(5)  # the interpolation weights are the only random draw
    eps = torch.rand(N, 1, 1, 1)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    gp = ((grad.reshape(N, -1).pow(2).sum(1).sqrt() - 1) ** 2).mean()
    by_hand = D(fake).mean() - D(real).mean() + 10.0 * gp
    _assert_same_loss_and_d_gradients(loss, by_hand, D)
    assert logs["gp"].item() == pytest.approx(gp.item(), rel=1e-6)


def test_penalty_pass_runs_in_fp32_under_autocast():
    G, D = _nets()
    real, latents = _batch()
    dtypes = []
    D[0].register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    objective = Objective(NonSaturatingLoss(), regularizer=R1(every=1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = objective.discriminator_loss(G, D, real, latents, d_step=0)
    assert dtypes == [torch.bfloat16, torch.bfloat16, torch.float32]
    assert loss.dtype == torch.float32


def test_augment_sees_every_image_d_sees():
    G, D = _nets()
    real, latents = _batch()
    seen = []

    def spy(x):
        seen.append(x.shape)
        return x.flip(-1)

    objective = Objective(HingeLoss(), regularizer=R1(every=2), augment=spy)
    objective.discriminator_loss(G, D, real, latents, d_step=0)
    assert len(seen) == 3  # real, fake, the penalty's reals
    objective.discriminator_loss(G, D, real, latents, d_step=1)
    assert len(seen) == 5
    objective.generator_loss(G, D, real, latents)
    assert len(seen) == 6


def test_each_loss_logs_its_own_scalars():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0])
    bce = NonSaturatingLoss().logs(real, fake)
    assert set(bce) == {"d_real_prob", "d_fake_prob"}
    assert bce["d_real_prob"].item() == pytest.approx(torch.sigmoid(real).mean().item())
    assert set(HingeLoss().logs(real, fake)) == {"d_real_logit", "d_fake_logit"}
    w = WassersteinLoss().logs(real, fake)
    assert w["wasserstein_estimate"].item() == pytest.approx(2.0 - (-1.0))
    assert WassersteinLoss().discriminator(real, fake).item() == pytest.approx(-3.0)


def test_regularizer_logs_stay_until_the_next_lazy_step():
    G, D = _nets()
    real, latents = _batch()
    objective = Objective(NonSaturatingLoss(), regularizer=R1(every=2))
    _, logs0 = objective.discriminator_loss(G, D, real, latents, d_step=0)
    _, logs1 = objective.discriminator_loss(G, D, real, latents, d_step=1)
    assert logs1["r1"] is logs0["r1"]


def test_bad_lazy_interval_is_a_user_error():
    with pytest.raises(UserError, match="regularizer.every"):
        R1(every=0)


# ---------------------------------------------------------------------------- GANModule
class Images(L.LightningDataModule):
    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.randn(24, 2, 5, 5), batch_size=6)


class RecordingObjective(Objective):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d_steps: list[int] = []
        self.fakes: list[tuple[str, torch.Tensor | None]] = []

    def discriminator_loss(self, G, D, real, latents, d_step, fake=None):
        self.d_steps.append(d_step)
        self.fakes.append(("D", fake))
        return super().discriminator_loss(G, D, real, latents, d_step, fake)

    def generator_loss(self, G, D, real, latents, fake=None):
        self.fakes.append(("G", fake))
        return super().generator_loss(G, D, real, latents, fake)


def _module(objective, **options) -> GANModule:
    G, D = _nets()
    opt = lambda p: torch.optim.Adam(p, lr=1e-3)  # noqa: E731
    return GANModule(G, D, opt, opt, objective=objective, latent_dim=LATENT, seed=0,
                     **module_options(num_fixed_samples=4, **options))  # fmt: skip


def _trainer(steps: int, n_disc: int = 1) -> L.Trainer:
    return L.Trainer(max_steps=(n_disc + 1) * steps, accelerator="cpu", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0)  # fmt: skip


def test_d_step_counts_discriminator_updates_through_a_resume(tmp_path):
    objective = RecordingObjective(regularizer=R1(every=3))
    module = _module(objective, n_disc=2)
    trainer = _trainer(2, n_disc=2)
    trainer.fit(module, datamodule=Images())
    assert objective.d_steps == [0, 1, 2, 3]
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    resumed = RecordingObjective(regularizer=R1(every=3))
    _trainer(3, n_disc=2).fit(_module(resumed, n_disc=2), datamodule=Images(),
                              ckpt_path=tmp_path / "c.ckpt")  # fmt: skip
    assert resumed.d_steps == [4, 5]


@pytest.mark.parametrize("setting, reuse", [(False, False), (True, True), ("auto", True)])
def test_reuse_fakes_runs_one_generator_forward_per_step(setting, reuse):
    """reuse_fakes: the D step's fakes, made with G's graph, are what the G step's loss sees;
    auto (the default) reuses them when n_disc=1."""
    objective = RecordingObjective()
    module = _module(objective, reuse_fakes=setting)
    assert module.reuse_fakes is reuse
    forwards: list[int] = []
    module.generator.register_forward_hook(lambda *args: forwards.append(1))
    _trainer(3).fit(module, datamodule=Images())
    assert len(forwards) == (3 if reuse else 6)
    (d, d_fake), (g, g_fake) = objective.fakes[:2]
    assert (d, g) == ("D", "G")
    if reuse:
        assert d_fake is g_fake and g_fake.grad_fn is not None  # one tensor, G's graph kept
    else:
        assert d_fake is None and g_fake is None  # each loss makes its own


def test_reused_fakes_give_g_the_loss_and_gradients_of_a_fresh_forward():
    """The faster path against the direct one: at each G step, G's loss on the reused fakes and
    its gradients equal those of a fresh G forward of the same latents (G is unchanged since
    the fakes were made; a stale or detached batch would differ or fail)."""
    drawn: list[torch.Tensor] = []
    compared: list[tuple[torch.Tensor, ...]] = []

    class Comparing(Objective):
        def generator_loss(self, G, D, real, latents, fake=None):
            loss, logs = super().generator_loss(G, D, real, latents, fake)
            fresh, _ = super().generator_loss(G, D, real, lambda n: drawn[-1])
            params = list(G.parameters())
            reused_grads = torch.autograd.grad(loss, params, retain_graph=True)
            fresh_grads = torch.autograd.grad(fresh, params, retain_graph=True)
            compared.append((loss.detach(), fresh.detach(), *reused_grads, *fresh_grads))
            return loss, logs

    module = _module(Comparing(), reuse_fakes=True)
    noise = module.noise
    module.noise = lambda n: drawn.append(noise(n)) or drawn[-1]
    _trainer(3).fit(module, datamodule=Images())
    assert len(compared) == 3 and len(drawn) == 3  # one latent draw per step
    for loss, fresh, *grads in compared:
        assert torch.allclose(loss, fresh, rtol=1e-6, atol=1e-7)
        half = len(grads) // 2
        for reused, direct in zip(grads[:half], grads[half:], strict=True):
            assert torch.allclose(reused, direct, rtol=1e-5, atol=1e-7)


def test_reuse_fakes_with_several_d_steps_is_a_user_error_and_off_under_auto():
    with pytest.raises(UserError, match="module.reuse_fakes=true needs module.n_disc=1"):
        _module(Objective(), reuse_fakes=True, n_disc=2)
    assert _module(Objective(), reuse_fakes="auto", n_disc=2).reuse_fakes is False
    for bad in ("sometimes", 1):
        with pytest.raises(UserError, match="module.reuse_fakes must be true, false or auto"):
            _module(Objective(), reuse_fakes=bad)


def test_regularizer_augment_channels_last_and_ema_train_together():
    objective = Objective(WassersteinLoss(), GradientPenalty(), DiffAugment("color,cutout"))
    module = _module(objective, channels_last=True, ema_decay=0.5)
    before = module.discriminator[0].weight.detach().clone()
    _trainer(2).fit(module, datamodule=Images())
    assert module.generator_steps == 2
    assert module.discriminator[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not torch.equal(module.discriminator[0].weight, before)
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_compile_leaves_d_eager_when_the_regularizer_needs_double_backward(caplog):
    module = _module(Objective(regularizer=R1()), compile=True)
    with caplog.at_level(logging.INFO, logger="gan_lab.gan.module"):
        module.configure_model()
    assert module.generator._compiled_call_impl is not None
    assert module.discriminator._compiled_call_impl is None
    assert "compiling only the generator" in caplog.text
    plain = _module(Objective(), compile=True)
    plain.configure_model()
    assert plain.discriminator._compiled_call_impl is not None


@pytest.mark.slow
def test_compile_with_r1_trains():
    """torch.compile's aot_autograd raises on double backward; G alone compiled trains."""
    module = _module(Objective(regularizer=R1(every=1)), compile=True)
    _trainer(2).fit(module, datamodule=Images())
    assert module.generator_steps == 2


@pytest.mark.parametrize(
    "group,option", [("loss", "wasserstein"), ("regularizer", "r1"), ("regularizer", "gp"),
                     ("augment", "diffaugment")],
)  # fmt: skip
def test_objective_configs_pass_the_checkpoint_target_allowlist(group, option):
    from omegaconf import OmegaConf

    from gan_lab.gan.checkpoints import safe_instantiate

    conf = Path(__file__).resolve().parent.parent / "conf"
    built = safe_instantiate(OmegaConf.load(conf / group / f"{option}.yaml"), where=group)
    assert type(built).__module__ in ("gan_lab.gan.objectives", "gan_lab.gan.augment")


# ---------------------------------------------------------------------------- real runs
RUNS = {
    "hinge": (["loss=hinge"], {"train/d_real_logit", "train/d_fake_logit"}),
    "wgan_gp": (["loss=wasserstein", "regularizer=gp", "module.n_disc=2"],
                {"train/wasserstein_estimate", "train/gp"}),
    "r1": (["regularizer=r1", "regularizer.every=2"], {"train/d_real_prob", "train/r1"}),
    "diffaugment": (["augment=diffaugment"], {"train/d_real_prob", "train/d_fake_prob"}),
}  # fmt: skip


@pytest.mark.slow
def test_objectives_train_on_mnist(tmp_path, session_data_dir, shared_data):
    """A few real generator steps on MNIST through gan_lab.gan.fit.fit for each objective,
    in one process; each run's CSV log has the scalars its objective names."""
    from conftest import compose_config

    from gan_lab.gan.fit import fit

    for name, (overrides, expected) in RUNS.items():
        run_dir = tmp_path / name
        cfg = compose_config(
            ["logger=csv", "metrics=none", "trainer=cpu", "trainer.max_steps=3",
             "trainer.log_every_n_steps=1", "+trainer.limit_val_batches=1",
             "trainer.enable_progress_bar=false",
             "data.batch_size=16", f"paths.data_dir={session_data_dir}",
             f"paths.data_mirrors={shared_data}", *overrides],
            run_dir,
        )  # fmt: skip
        fit(cfg, run_dir)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["generator_steps"] == 3, name
        rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
        logged = {key for row in rows for key, value in row.items() if value}
        assert {"train/d_loss", "train/g_loss", *expected} <= logged, name
        assert "train/d_real" not in logged
        for row in rows:
            for key in expected & row.keys():
                if row[key]:
                    assert torch.isfinite(torch.tensor(float(row[key]))), (name, key)


def test_readme_lists_every_objective_option():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    conf = Path(__file__).resolve().parent.parent / "conf"
    for group in ("loss", "regularizer", "augment"):
        for option in (conf / group).glob("*.yaml"):
            assert f"`{group}={option.stem}`" in readme, (group, option.stem)
