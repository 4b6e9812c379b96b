"""The DCGAN builders: output shapes, size errors, init, and every model config."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gan_lab.errors import UserError
from gan_lab.models import build_discriminator, build_generator


@pytest.mark.parametrize("image_size,num_layers", [(28, 2), (32, 3), (64, 4), (32, 2)])
@pytest.mark.parametrize("kernel_size", [2, 3, 4, 5])
@pytest.mark.parametrize("stride", [2, 3])
def test_generator_makes_image_size(image_size, num_layers, kernel_size, stride):
    if image_size % stride**num_layers and stride == 3:
        with pytest.raises(UserError, match=f"{image_size}x{image_size}"):
            build_generator(image_size, 1, 8, num_layers=num_layers, kernel_size=kernel_size,
                            stride=stride)  # fmt: skip
        return
    if kernel_size < stride:
        pytest.skip("kernel smaller than stride is covered by its own test")
    g = build_generator(image_size, 3, 8, base_width=8, num_layers=num_layers,
                        kernel_size=kernel_size, stride=stride)  # fmt: skip
    x = g(torch.randn(2, 8))
    assert x.shape == (2, 3, image_size, image_size)
    assert x.min() >= -1 and x.max() <= 1


@pytest.mark.parametrize("kernel_size", [2, 3, 4])
@pytest.mark.parametrize("stride", [2, 3, 4])
@pytest.mark.parametrize("max_pool", [False, True])
def test_discriminator_gives_one_logit_per_image(kernel_size, stride, max_pool):
    layers = 1 if (max_pool and stride >= 3) else 2
    d = build_discriminator(28, 1, base_width=8, num_layers=layers, kernel_size=kernel_size,
                            stride=stride, max_pool=max_pool)  # fmt: skip
    assert d(torch.randn(5, 1, 28, 28)).shape == (5,)


def test_discriminator_that_shrinks_below_one_pixel_is_rejected():
    with pytest.raises(UserError, match="below 1x1.*num_layers"):
        build_discriminator(28, 1, num_layers=4, stride=4)


def test_explicit_init_size_mismatch_names_both_sizes_and_the_knob():
    with pytest.raises(UserError) as err:
        build_generator(28, 1, 16, init_size=8)
    msg = str(err.value)
    assert "32x32" in msg and "28x28" in msg and "init_size" in msg
    assert "\n" not in msg


def test_explicit_padding_that_cannot_reach_the_size_is_rejected():
    # kernel 3, stride 2, padding 1, no output padding: 2n-1 is odd, never 28.
    with pytest.raises(UserError, match="cannot produce 28x28"):
        build_generator(28, 1, 16, kernel_size=3, padding=1)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_latent_dim_must_be_positive(bad):
    with pytest.raises(UserError, match="model.latent_dim must be a positive integer"):
        build_generator(28, 1, bad)


def test_unknown_norm_and_activation_are_named():
    with pytest.raises(UserError, match="unknown normalization 'bogus'"):
        build_generator(28, 1, 8, norm="bogus")
    with pytest.raises(UserError, match="unknown activation 'bogus'"):
        build_discriminator(28, 1, activation="bogus")


def test_weights_follow_dcgan_init():
    torch.manual_seed(0)
    g = build_generator(64, 3, 100, num_layers=4)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    w = torch.cat([c.weight.flatten() for c in convs])
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.05)


def test_radford_64_widths():
    g = build_generator(64, 3, 100, base_width=64, num_layers=4)
    widths = [m.out_channels for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert widths == [256, 128, 64, 3] and g.init_size == 4
    assert g.project[0].out_features == 512 * 4 * 4


MODEL_DATA = [("dcgan", "mnist"), ("dcgan", "cifar10"), ("dcgan32", "cifar10"),
              ("dcgan64", "folder"), ("keras_mnist", "mnist"), ("keras_mnist", "cifar10"),
              ("keras_bedroom64", "folder")]  # fmt: skip
# Deprecated names: each YAML pulls its new config (test_deprecated_model_names_...).
RENAMED = {"seed003": ("keras_mnist", "mnist"), "seed000_bedroom": ("keras_bedroom64", "folder")}


@pytest.mark.parametrize("model,data", MODEL_DATA)
def test_every_model_config_builds_the_data_shape(repo_root, model, data):
    with initialize_config_dir(str(repo_root / "conf"), version_base="1.3"):
        cfg = compose("config", [f"model={model}", f"data={data}", "++data.root=/nonexistent"])
    g = instantiate(cfg.model.generator)
    d = instantiate(cfg.model.discriminator)
    x = g(torch.randn(2, cfg.model.latent_dim))
    assert x.shape == (2, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    assert d(x).shape == (2,)


def test_every_model_config_is_covered(repo_root):
    options = {p.stem for p in (repo_root / "conf" / "model").glob("*.yaml")}
    assert options == {m for m, _ in MODEL_DATA} | set(RENAMED)


@pytest.mark.parametrize("d_kernel", [2, 3, 4])
@pytest.mark.parametrize("d_stride", [2, 3, 4])
@pytest.mark.parametrize("max_pool", [False, True])
@pytest.mark.parametrize("size", [28, 32])
def test_keras_mnist_every_swept_discriminator_builds(d_kernel, d_stride, max_pool, size):
    from gan_lab.models.reports import build_keras_mnist_discriminator

    d = build_keras_mnist_discriminator(size, 1, kernel_size=d_kernel, stride=d_stride,
                                        max_pool=max_pool)  # fmt: skip
    assert d(torch.randn(2, 1, size, size)).shape == (2,)


@pytest.mark.parametrize("g_kernel", [2, 3, 4])
@pytest.mark.parametrize("latent_dim", [25, 50, 100])
def test_keras_mnist_generator_knobs_keep_the_image_size(g_kernel, latent_dim):
    from gan_lab.models.reports import build_keras_mnist_generator

    g = build_keras_mnist_generator(28, 1, latent_dim=latent_dim, kernel_size=g_kernel)
    assert g(torch.randn(2, latent_dim)).shape == (2, 1, 28, 28)


def test_keras_bedroom64_matches_the_report():
    from gan_lab.models.reports import (
        build_keras_bedroom64_discriminator,
        build_keras_bedroom64_generator,
    )

    g = build_keras_bedroom64_generator(64, 3, 100)
    assert g.project[0].out_features == 16_384
    convts = [m.out_channels for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert convts == [128, 64, 32]
    assert g(torch.randn(2, 100)).shape == (2, 3, 64, 64)
    d = build_keras_bedroom64_discriminator(64, 3)
    convs = [m.out_channels for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [32, 128, 256] and d(torch.randn(2, 3, 64, 64)).shape == (2,)
    with pytest.raises(UserError, match="data.image_size=64"):
        build_keras_bedroom64_generator(32, 3, 100)


def _model_cfg(repo_root, model, data):
    with initialize_config_dir(str(repo_root / "conf"), version_base="1.3"):
        cfg = compose("config", [f"model={model}", f"data={data}", "++data.root=/nonexistent"])
    return cfg


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_deprecated_model_names_compose_the_same_networks_with_one_notice(repo_root, old, capsys):
    from gan_lab.commands.cli import check_group_choices

    new, data = RENAMED[old]
    check_group_choices([f"model={old}", f"data={data}"], repo_root / "conf")
    err = capsys.readouterr().err
    assert err == f"model={old} is deprecated; use model={new}\n"
    check_group_choices([f"model={new}"], repo_root / "conf")
    assert capsys.readouterr().err == ""
    old_cfg, new_cfg = _model_cfg(repo_root, old, data), _model_cfg(repo_root, new, data)
    assert old_cfg.model == new_cfg.model
    for part in ("generator", "discriminator"):
        torch.manual_seed(0)
        a = instantiate(old_cfg.model[part]).state_dict()
        torch.manual_seed(0)
        b = instantiate(new_cfg.model[part]).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_deprecated_names_are_left_out_of_the_unknown_option_list(repo_root):
    from gan_lab.commands.cli import check_group_choices

    with pytest.raises(UserError, match="unknown model 'seed3'") as err:
        check_group_choices(["model=seed3"], repo_root / "conf")
    assert "keras_mnist" in str(err.value) and "seed003" not in str(err.value)


@pytest.mark.parametrize("old,new", [("seed003", "keras_mnist"), ("seed000", "keras_bedroom64")])
def test_a_checkpoint_with_the_old_builder_target_still_loads(repo_root, tmp_path, old, new):
    """Checkpoints store the resolved config they were trained with, old ``_target_`` names
    included: those must pass safe_instantiate's allowlist and build the same network."""
    from omegaconf import OmegaConf

    from gan_lab.gan.checkpoints import load_generator

    data = "mnist" if new == "keras_mnist" else "folder"
    model = OmegaConf.to_container(_model_cfg(repo_root, new, data).model, resolve=True)
    for part in ("generator", "discriminator"):
        target = model[part]["_target_"]
        assert target == f"gan_lab.models.reports.build_{new}_{part}"
        model[part]["_target_"] = f"gan_lab.models.reports.build_{old}_{part}"
    trained = instantiate(model["generator"])
    torch.nn.init.normal_(trained.project[0].weight)  # weights the builder would not give
    state = {f"generator.{k}": v for k, v in trained.state_dict().items()}
    torch.save({"gan_lab_config": {"model": model}, "state_dict": state}, tmp_path / "old.ckpt")
    generator, config, _ = load_generator(str(tmp_path / "old.ckpt"))
    assert config["model"]["generator"]["_target_"].endswith(f"build_{old}_generator")
    assert type(generator) is type(trained)
    assert torch.equal(generator.project[0].weight, trained.project[0].weight)
