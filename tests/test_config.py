"""Every option of every config group composes, resolves and (where cheap) instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import compose_config
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_lab.commands.cli import check_composes, check_group_choices
from gan_lab.errors import UserError
from gan_lab.gan.fit import build_trainer, resolve_precision

CONF = Path(__file__).resolve().parent.parent / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def compose_cfg(overrides: list[str], tmp_path: Path):
    return compose_config(
        [f"paths.data_dir={tmp_path}/data", "++data.root=" + str(tmp_path), *overrides], tmp_path
    )


def test_config_groups_are_the_documented_ones():
    expected = {"augment", "callbacks", "data", "experiment", "logger", "loss", "metrics",
                "model", "module", "optimizer", "paths", "regularizer", "trainer"}  # fmt: skip
    assert set(GROUPS) == expected


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_cfg([f"{group}={option}"], tmp_path)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["seed"] == cfg.seed
    if group == "experiment":
        return
    assert HydraConfig.get().runtime.choices[group] == option
    if group in ("loss", "regularizer", "augment", "logger") and cfg.get(group):
        assert instantiate(cfg[group]) is not None
    if group == "optimizer":
        import torch

        opt = instantiate(cfg.optimizer.generator)([torch.nn.Parameter(torch.zeros(1))])
        assert opt.defaults["lr"] == cfg.optimizer.lr


@pytest.mark.parametrize("option", ["default", "cpu", "cpu_bf16"])
def test_cpu_trainers_build(option, tmp_path):
    cfg = compose_cfg([f"trainer={option}", "trainer.max_steps=7", "module.n_disc=2"], tmp_path)
    trainer = build_trainer(cfg, callbacks=[], loggers=[])
    # gan_lab steps are generator updates: Lightning counts (n_disc + 1) optimizer steps each.
    assert trainer.max_steps == 21


@pytest.mark.parametrize(
    ("capabilities", "cpu_auto"),
    [
        ({"avx512_bf16": True, "amx_bf16": False}, "bf16-mixed"),  # e.g. Zen 4, Cooper Lake
        ({"avx512_bf16": False, "amx_bf16": True}, "bf16-mixed"),  # Sapphire Rapids
        ({"avx512_bf16": False, "amx_bf16": False, "avx2": True}, "32-true"),  # emulated bf16
    ],
)
def test_precision_auto_per_device_class(monkeypatch, capabilities, cpu_auto):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert resolve_precision("auto", "cpu") == cpu_auto
    assert resolve_precision("auto", "mps") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert resolve_precision("32-true", "cpu") == "32-true"


@pytest.mark.parametrize(
    ("capability", "gpu_auto"),
    [((9, 0), "bf16-mixed"), ((8, 0), "bf16-mixed"), ((7, 5), "16-mixed"), ((6, 1), "16-mixed")],
)  # H100, A100: bf16 without a scaler; T4, GTX 1080: fp16 with one
def test_precision_auto_on_cuda_is_bf16_from_ampere_on(monkeypatch, capability, gpu_auto):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    assert resolve_precision("auto", "gpu") == gpu_auto
    assert resolve_precision("auto", "auto") == gpu_auto


def test_ddp_trainer_finds_unused_parameters(tmp_path):
    cfg = compose_cfg(["trainer=ddp"], tmp_path)
    assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"


def test_unknown_group_option_is_one_line():
    with pytest.raises(UserError) as err:
        check_group_choices(["data=imagenet_typo"], CONF)
    assert "unknown data 'imagenet_typo'" in str(err.value) and "mnist" in str(err.value)


def test_sweep_values_are_checked_too():
    check_group_choices(["-m", "data=mnist,cifar10", "seed=0,1"], CONF)
    with pytest.raises(UserError, match="unknown model 'nope'"):
        check_group_choices(["-m", "model=dcgan,nope"], CONF)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["trainer.foo=1"], "+trainer.foo=1"),
        (["metrics=null"], "metrics=none"),
        (["-m", "seed=0,1", "optimizer.nope=2"], "optimizer.nope"),
    ],
)
def test_bad_overrides_are_one_line(args, fragment):
    with pytest.raises(UserError) as err:
        check_composes(args, CONF)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_good_overrides_and_sweeps_compose():
    check_composes(["-m", "model.latent_dim=25,50", "data=mnist,cifar10"], CONF)
    check_composes(["--cfg", "job", "trainer=cpu_bf16", "hydra/launcher=basic"], CONF)


SWEEPS = sorted(p.stem for p in (CONF / "experiment").glob("report*.yaml"))


@pytest.mark.parametrize("experiment", SWEEPS)
def test_report_sweeps_build_every_setting(experiment, tmp_path):
    """Each preset sweeps its knob over 3 seeds; every value builds a working network pair."""
    import torch
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF), version_base="1.3"):
        full = compose("config", [f"experiment={experiment}", "++data.root=/x"],
                       return_hydra_config=True)  # fmt: skip
    params = dict(full.hydra.sweeper.params)
    assert params.pop("seed") == "0,1,2" and len(params) == 1
    ((knob, values),) = params.items()
    datasets = ["folder"] if experiment.startswith("report1") else ["mnist", "cifar10"]
    for data in datasets:
        for value in str(values).split(","):
            cfg = compose_cfg([f"experiment={experiment}", f"data={data}", f"{knob}={value}"],
                              tmp_path)  # fmt: skip
            if not knob.startswith("model."):
                continue
            g, d = instantiate(cfg.model.generator), instantiate(cfg.model.discriminator)
            x = g(torch.randn(2, cfg.model.latent_dim))
            assert x.shape[-1] == cfg.data.image_size and d(x).shape == (2,)


def test_module_group_holds_the_ganmodule_settings(tmp_path):
    """GANModule comes from conf/module/ (its _target_ and its only defaults)."""
    from gan_lab.gan.fit import build_module
    from gan_lab.gan.module import GANModule

    cfg = compose_cfg(["module.n_disc=3", "module.ema_decay=0.9", "model.latent_dim=8"], tmp_path)
    assert "n_disc" not in cfg and "ema_decay" not in cfg  # no second home at the root
    module = build_module(cfg)
    assert type(module) is GANModule
    assert (module.n_disc, module.ema_decay, module.on_nonfinite) == (3, 0.9, "stop")


def test_moved_root_keys_still_work_with_one_notice(capsys):
    from gan_lab.commands.cli import rename_moved_keys

    args = rename_moved_keys(["n_disc=5", "compile=true", "model=dcgan32", "seed=1"])
    assert args == ["module.n_disc=5", "module.compile=true", "model=dcgan32", "seed=1"]
    notices = capsys.readouterr().err.splitlines()
    assert notices == [
        "n_disc is now module.n_disc; running with module.n_disc=5",
        "compile is now module.compile; running with module.compile=true",
    ]


def test_checkpoint_configs_give_n_disc_from_the_module_group_or_the_old_root_key():
    from gan_lab.gan.checkpoints import stored_n_disc

    assert stored_n_disc({"module": {"n_disc": 5}, "seed": 0}) == 5
    assert stored_n_disc({"n_disc": 3, "seed": 0}) == 3  # written before conf/module/ existed
    assert stored_n_disc({"seed": 0}) == 1
