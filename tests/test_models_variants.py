"""GAN variants as configs: spectral normalization (``norm: spectral``) and SNGAN's ResNet.

Shapes and size errors, that spectral norm really bounds each layer's largest singular value,
and what training needs of a network: state_dict round trips (checkpoints), deepcopy (EMA),
channels_last, torch.compile, and real short runs (one process, EMA + channels_last, DDP).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, run_train
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn
from torch.nn.utils import parametrize

from gan_lab.errors import UserError
from gan_lab.models import build_discriminator, build_generator
from gan_lab.models.resnet import build_resnet_discriminator, build_resnet_generator

NORMED = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)
WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def _weighted(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, WEIGHTED)]


def _sigma(layer: nn.Module) -> float:
    """The largest singular value of a layer's (normalized) weight, as spectral norm sees it:
    a transposed conv is normalized along its output dimension (dim 1), the rest along dim 0."""
    dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
    w = layer.weight.detach().movedim(dim, 0).flatten(1)
    return torch.linalg.matrix_norm(w, ord=2).item()


NETS = {
    "resnet_g": lambda: build_resnet_generator(32, 3, 16, width=32),
    "resnet_d": lambda: build_resnet_discriminator(32, 3, width=32),
    "dcgan_g_spectral": lambda: build_generator(32, 3, 16, 16, 3, norm="spectral"),
    "dcgan_d_spectral": lambda: build_discriminator(32, 3, 16, 3, norm="spectral"),
}
NET_NAMES = list(NETS)
SPECTRAL_NAMES = [n for n in NET_NAMES if n != "resnet_g"]  # SNGAN's G has batch norm, no SN


def _net(name: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """A small network of one kind (seeded init) and an input batch for it."""
    torch.manual_seed(seed)
    net = NETS[name]()
    x = torch.randn(4, 16) if name.split("_")[1] == "g" else torch.randn(4, 3, 32, 32)
    return net, x


def _train_forwards(net: nn.Module, x: torch.Tensor, n: int = 3) -> None:
    """Forwards in train mode: power iterations (and batch-norm statistics) move."""
    net.train()
    with torch.no_grad():
        for _ in range(n):
            net(x)


# --- SNGAN's ResNet ----------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 1])
def test_resnet_shapes_at_32px(channels):
    g = build_resnet_generator(32, channels, 128)
    d = build_resnet_discriminator(32, channels)
    x = g(torch.randn(3, 128))
    assert x.shape == (3, channels, 32, 32)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (3,)


def test_resnet_matches_the_paper():
    """Widths 256 / 128, a 4x4 start, 3 up-blocks and 4 D blocks; every D layer is spectrally
    normalized and none of G is. Parameter counts are Mimicry's SNGAN 32 (4.28M / 1.05M)."""
    g = build_resnet_generator(32, 3, 128)
    d = build_resnet_discriminator(32, 3)
    assert g.init_size == 4 and g.project.out_features == 256 * 16 and len(g.blocks) == 3
    assert sum(p.numel() for p in g.parameters()) == 4_276_739
    assert sum(p.numel() for p in d.parameters()) == 1_053_825
    assert not any(parametrize.is_parametrized(m) for m in g.modules())
    assert all(parametrize.is_parametrized(m, "weight") for m in _weighted(d))
    assert len(_weighted(d)) == 3 + 3 + 2 + 2 + 1  # blocks' convs and shortcuts, the logit
    assert not any(isinstance(m, NORMED) for m in d.modules())
    plain = build_resnet_discriminator(32, 3, spectral_norm=False)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert sum(p.numel() for p in plain.parameters()) == 1_053_825


def test_resnet_other_sizes_that_the_blocks_support():
    g, d = build_resnet_generator(64, 3, 8, width=16), build_resnet_discriminator(64, 3, width=16)
    assert d(g(torch.randn(2, 8))).shape == (2,)


@pytest.mark.parametrize(
    "build,size,fragments",
    [
        (lambda s: build_resnet_generator(s, 3, 128), 28, ["28x28", "multiple of 8", "32"]),
        (lambda s: build_resnet_discriminator(s, 3), 30, ["30x30", "multiple of 4", "32"]),
        (lambda s: build_resnet_generator(s, 3, 0), 32, ["model.latent_dim"]),
        (lambda s: build_resnet_discriminator(s, 3, width=-1), 32, ["model.discriminator.width"]),
    ],
)
def test_resnet_bad_sizes_are_one_line_user_errors(build, size, fragments):
    with pytest.raises(UserError) as err:
        build(size)
    msg = str(err.value)
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg


def test_resnet_init_follows_mimicry():
    """xavier-uniform: gain sqrt(2) in residual branches, 1 on shortcuts and in/out layers."""
    torch.manual_seed(0)
    g = build_resnet_generator(32, 3, 128)
    conv1 = g.blocks[0].conv1.weight  # 256 -> 256, 3x3: bound sqrt(2) * sqrt(6 / (2 * 2304))
    assert conv1.abs().max().item() == pytest.approx(2**0.5 * (6 / 4608) ** 0.5, rel=0.01)
    shortcut = g.blocks[0].shortcut.weight  # 256 -> 256, 1x1: gain 1
    assert shortcut.abs().max().item() == pytest.approx((6 / 512) ** 0.5, rel=0.01)
    assert all(not m.bias.any() for m in _weighted(g) if m.bias is not None)


# --- spectral norm -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SPECTRAL_NAMES)
def test_spectral_norm_bounds_the_largest_singular_value(name):
    """Whatever the raw weights' scale, after a few training forwards (one power iteration
    each) every normalized weight has a largest singular value of ~1. Power iteration
    underestimates it, so the normalized value approaches 1 from above; it converges slowest
    on small matrices with close top singular values (the 3-channel output layer: ~1.06 after
    10 forwards, while most layers are within 1 %), hence the 10 % tolerance."""
    net, x = _net(name)
    layers = [m for m in net.modules() if parametrize.is_parametrized(m, "weight")]
    assert layers and layers == _weighted(net)
    with torch.no_grad():
        for m in layers:
            m.parametrizations.weight.original.mul_(7.0)  # raw norms far from 1
    raw = [torch.linalg.matrix_norm(
        m.parametrizations.weight.original.movedim(
            1 if isinstance(m, nn.ConvTranspose2d) else 0, 0).flatten(1), ord=2).item()
        for m in layers]  # fmt: skip
    assert max(abs(r - 1) for r in raw) > 0.5
    _train_forwards(net, x, 10)
    net.eval()
    sigmas = [_sigma(m) for m in layers]
    assert all(0.99 < s < 1.1 for s in sigmas), sigmas
    assert sorted(sigmas)[len(sigmas) // 2] < 1.02, sigmas


@pytest.mark.parametrize("model", ["dcgan", "dcgan32", "dcgan64"])
def test_norm_spectral_on_every_dcgan_config(repo_root, model):
    """model.{generator,discriminator}.norm=spectral: no norm layer, every conv / transposed conv
    / linear layer parametrized (projection and logit included), outputs of the right shape."""
    size = {"dcgan": 28, "dcgan32": 32, "dcgan64": 64}[model]
    with initialize_config_dir(str(repo_root / "conf"), version_base="1.3"):
        cfg = compose("config", [f"model={model}", f"data.image_size={size}",
                                 "model.generator.norm=spectral",
                                 "model.discriminator.norm=spectral"])  # fmt: skip
    g, d = instantiate(cfg.model.generator), instantiate(cfg.model.discriminator)
    for net, node in [(g, cfg.model.generator), (d, cfg.model.discriminator)]:
        assert not any(isinstance(m, NORMED) for m in net.modules())
        layers = _weighted(net)
        assert len(layers) == node.num_layers + 1  # the convs and one linear layer
        assert all(parametrize.is_parametrized(m, "weight") for m in layers)
        assert all(m.bias is not None for m in layers)  # no norm layer supplies a shift
    x = g(torch.randn(2, cfg.model.latent_dim))
    assert x.shape == (2, 1, size, size)
    assert d(x).shape == (2,)


def test_spectral_norm_keeps_the_dcgan_init_on_the_raw_weights():
    torch.manual_seed(0)
    g = build_generator(64, 3, 100, num_layers=4, norm="spectral")
    convs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    w = torch.cat([c.parametrizations.weight.original.flatten() for c in convs])
    assert w.std().item() == pytest.approx(0.02, rel=0.05)


def test_unknown_norm_lists_spectral_in_one_line():
    with pytest.raises(UserError) as err:
        build_discriminator(28, 1, norm="spectal")
    msg = str(err.value)
    assert "'spectal'" in msg and "'spectral'" in msg and "model.discriminator.norm" in msg
    assert "\n" not in msg


# --- what training needs of the networks -------------------------------------------------


@pytest.mark.parametrize("name", NET_NAMES)
def test_state_dict_round_trip_gives_identical_outputs(name):
    """A checkpoint's state_dict (raw weights, power-iteration vectors, BN statistics) loads
    strictly into a freshly built network, which then computes exactly the same."""
    net, x = _net(name)
    _train_forwards(net, x)
    state = net.state_dict()
    if name in SPECTRAL_NAMES:
        assert any(k.endswith("parametrizations.weight.original") for k in state)
        assert any(k.endswith("parametrizations.weight.0._u") for k in state)
    fresh = _net(name, seed=123)[0]  # a different init and different power-iteration vectors
    fresh.load_state_dict(state)
    net.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(net(x), fresh(x))


@pytest.mark.parametrize("name", NET_NAMES)
def test_deepcopy_for_ema_gives_identical_outputs(name):
    """GANModule's EMA: a deepcopy, parameters lerped and buffers copied pairwise in order."""
    net, x = _net(name)
    _train_forwards(net, x)
    ema = copy.deepcopy(net).requires_grad_(False)
    net.eval(), ema.eval()
    with torch.no_grad():
        assert torch.equal(net(x), ema(x))
    names = [n for n, _ in net.named_parameters()]
    assert names == [n for n, _ in ema.named_parameters()]
    assert [n for n, _ in net.named_buffers()] == [n for n, _ in ema.named_buffers()]
    # One EMA update after a training step moves the copy's raw weights, not its outputs' scale.
    net.train()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))
        torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 0.5)
        for ema_buf, buf in zip(ema.buffers(), net.buffers(), strict=True):
            ema_buf.copy_(buf)
    ema.eval()
    with torch.no_grad():
        assert torch.isfinite(ema(x)).all()


@pytest.mark.parametrize("name", NET_NAMES)
def test_channels_last_matches_contiguous(name):
    net, x = _net(name)
    _train_forwards(net, x)
    net.eval()
    with torch.no_grad():
        expected = net(x)
        net.to(memory_format=torch.channels_last)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        got = net(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # and it trains in that layout: gradients reach every raw weight
    net.train()
    net(x).float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.slow
def test_torch_compile_matches_eager():
    """The ResNet G and D (spectral norm's power iteration included) under torch.compile, in
    train mode (forward and backward) and eval mode, as GANModule compiles them in place."""
    torch.manual_seed(0)
    g = build_resnet_generator(32, 3, 128, width=64)
    d = build_resnet_discriminator(32, 3, width=64)
    g_eager, d_eager = copy.deepcopy(g), copy.deepcopy(d)
    g.compile(), d.compile()
    z = torch.randn(8, 128)
    for mode in ("train", "eval"):
        for net in (g, d, g_eager, d_eager):
            net.train(mode == "train")
        out = d(g(z))
        ref = d_eager(g_eager(z))
        torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)
        if mode == "train":
            out.sum().backward()
            ref.sum().backward()
            for net, ref_net in [(g, g_eager), (d, d_eager)]:
                # All of a net's gradients at once: fp32 reassociation through batch norm and
                # the 8x8 sums differs by ~0.2 % on a layer (and a conv bias before batch norm
                # has a true gradient of 0, so only noise to compare).
                grad = torch.cat([p.grad.flatten() for p in net.parameters()])
                ref_grad = torch.cat([p.grad.flatten() for p in ref_net.parameters()])
                assert (grad - ref_grad).norm() <= 1e-2 * ref_grad.norm()
    # The power-iteration vectors were updated in the compiled net as in the eager one.
    for (name, b), (_, c) in zip(d.named_buffers(), d_eager.named_buffers(), strict=True):
        torch.testing.assert_close(b, c, rtol=1e-3, atol=1e-4, msg=name)


# --- real short runs ---------------------------------------------------------------------


def _env(run_env: dict[str, str]) -> dict[str, str]:
    env = dict(run_env)
    env["GAN_LAB_CACHE"] = os.path.expanduser(os.path.join("~", ".cache", "gan_lab"))
    return env


def _completed(proc, run_dir: Path, steps: int) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["generator_steps"] == steps
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    return summary


RUNS = {
    "resnet32": ["model=resnet32"],
    "dcgan32_spectral_d": ["model=dcgan32", "model.discriminator.norm=spectral"],
    "dcgan32_spectral_ema_channels_last": [
        "model=dcgan32", "model.generator.norm=spectral", "model.discriminator.norm=spectral",
        "module.ema_decay=0.9", "module.channels_last=true"],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("run", list(RUNS))
def test_short_cifar10_run(run, run_env, repo_root, tmp_path):
    """``python -m gan_lab.train model=resnet32 data=cifar10 experiment=smoke ...`` trains, and
    its checkpoint's networks load strictly into freshly built ones."""
    if not (SHARED_DATA / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip("no CIFAR-10 in the shared data mirror")
    run_dir = tmp_path / "run"
    args = [*RUNS[run], "data=cifar10", "experiment=smoke", "trainer.max_steps=3", "logger=csv",
            "metrics=none", "data.batch_size=8", f"hydra.run.dir={run_dir}"]  # fmt: skip
    summary = _completed(run_train(args, _env(run_env), repo_root), run_dir, 3)
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    ema = "module.ema_decay=0.9" in RUNS[run]
    spectral_g = "model.generator.norm=spectral" in RUNS[run]
    assert any(k.startswith("generator_ema.") for k in state) == ema
    model = summary["config"]["model"]
    for prefix, node, spectral in [("generator.", "generator", spectral_g),
                                   ("generator_ema.", "generator", spectral_g),
                                   ("discriminator.", "discriminator", True)]:  # fmt: skip
        if prefix == "generator_ema." and not ema:
            continue
        net = instantiate(model[node])
        net.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        assert all(parametrize.is_parametrized(m, "weight") == spectral for m in _weighted(net))
        x = (
            torch.randn(2, model["latent_dim"])
            if node == "generator"
            else torch.randn(2, 3, 32, 32)
        )
        with torch.no_grad():
            assert torch.isfinite(net.eval()(x)).all()


@pytest.mark.slow
def test_two_process_ddp_with_spectral_norm_and_ema(run_env, repo_root, tmp_path):
    """SNGAN's ResNet trains under DDP (2 CPU processes, gloo) with EMA: the spectral-norm
    buffers and the EMA copy's parameters go through DDP's wrapping and buffer broadcasts."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    run_dir = tmp_path / "ddp"
    args = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "experiment=smoke",
            "logger=csv", "metrics=none", "trainer.enable_progress_bar=false",
            "trainer.max_steps=2", "data.batch_size=8", "model=resnet32", "data.image_size=32",
            "model.generator.width=64", "model.discriminator.width=64", "module.ema_decay=0.9",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    summary = _completed(run_train(args, _env(run_env), repo_root), run_dir, 2)
    assert summary["train_images"] == 2 * 8 * 2


@pytest.mark.slow
def test_resnet32_on_28px_mnist_is_one_line(run_env, repo_root, tmp_path):
    proc = run_train(["model=resnet32", f"hydra.run.dir={tmp_path}"], run_env, repo_root)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "28x28" in lines[0] and "multiple of 8" in lines[0]
