"""Reading a checkpoint never runs code from it: weights-only unpickling, allowlisted targets."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SHARED_DATA, train_short_run

from gan_lab.errors import UserError
from gan_lab.gan.checkpoints import load_checkpoint, load_generator, safe_instantiate


class RunsCodeOnLoad:
    """Pickles as a call to ``os.system``: unpickling it fully runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, session_data_dir):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    return train_short_run(tmp_path_factory.mktemp("run"), session_data_dir, steps=3)


def _cli(module: str, ckpt: Path, tmp_path: Path, env: dict, cwd: Path):
    args = [f"ckpt_path={ckpt}"]
    if module == "sample":
        args += [f"out={tmp_path / 'grid.png'}", "n=4", "interpolation_out=none"]
    else:
        args += [f"hydra.run.dir={tmp_path / 'evalrun'}", "metrics.num_samples=100"]
    return subprocess.run([sys.executable, "-m", f"gan_lab.{module}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _assert_one_line_refusal(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def test_the_code_running_fixture_really_runs_code(tmp_path):
    """Guard for the tests below: a full (non-weights-only) load does run the payload."""
    marker = tmp_path / "ran"
    torch.save({"x": RunsCodeOnLoad(f"touch {marker}")}, tmp_path / "evil.ckpt")
    torch.load(tmp_path / "evil.ckpt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("module", ["eval", "sample"])
def test_pickle_that_runs_code_is_refused(module, short_run, run_env, repo_root, tmp_path):
    marker = tmp_path / "pwned"
    ckpt = torch.load(short_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["gan_lab_config"]["payload"] = RunsCodeOnLoad(f"touch {marker}")
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil)
    proc = _cli(module, evil, tmp_path, run_env, repo_root)
    _assert_one_line_refusal(proc, f"checkpoint {evil} cannot be loaded safely", "posix.system")
    assert not marker.exists()


@pytest.mark.parametrize("module", ["eval", "sample"])
def test_generator_target_outside_the_allowlist_is_refused(
    module, short_run, run_env, repo_root, tmp_path
):
    marker = tmp_path / "pwned"
    ckpt = torch.load(short_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["gan_lab_config"]["model"]["generator"] = {
        "_target_": "os.system", "_args_": [f"touch {marker}"]
    }  # fmt: skip
    edited = tmp_path / "edited.ckpt"
    torch.save(ckpt, edited)
    proc = _cli(module, edited, tmp_path, run_env, repo_root)
    _assert_one_line_refusal(proc, "gan_lab_config.model.generator._target_ is 'os.system'")
    assert not marker.exists()


def test_eval_refuses_a_data_target_outside_the_allowlist(short_run, run_env, repo_root, tmp_path):
    marker = tmp_path / "pwned"
    ckpt = torch.load(short_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["gan_lab_config"]["data"]["_target_"] = "gan_lab.data.registry.subprocess.call"
    ckpt["gan_lab_config"]["data"]["_args_"] = [["touch", str(marker)]]
    edited = tmp_path / "edited.ckpt"
    torch.save(ckpt, edited)
    proc = _cli("eval", edited, tmp_path, run_env, repo_root)
    _assert_one_line_refusal(proc, "gan_lab_config.data._target_", "it is subprocess.call")
    assert not marker.exists()


def test_a_normal_checkpoint_loads_and_samples(short_run, run_env, repo_root, tmp_path):
    generator, config, ckpt = load_generator(str(short_run))
    assert config["model"]["generator"]["_target_"].startswith("gan_lab.")
    with torch.no_grad():
        assert generator(torch.randn(2, config["model"]["latent_dim"])).shape == (2, 1, 28, 28)
    proc = _cli("sample", short_run, tmp_path, run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_rng_states_and_plain_values_still_load(short_run, tmp_path):
    """Checkpoints may carry RNG states: tensors, ints, tuples, None load weights-only."""
    ckpt = torch.load(short_run / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["rng_states"] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    torch.save(ckpt, tmp_path / "rng.ckpt")
    loaded, _ = load_checkpoint(str(tmp_path / "rng.ckpt"))
    assert torch.equal(loaded["rng_states"]["torch"], torch.get_rng_state())
    assert loaded["rng_states"]["python"] == random.getstate()


REFUSED_CONFIGS = [
    (lambda m: {"_target_": "os.system", "_args_": [f"touch {m}"]},
     "at._target_ is 'os.system'"),
    (lambda m: {"layers": [{"_target_": "torch.nn.Linear", "in_features": 1, "out_features": 1},
                           {"_target_": "subprocess.call", "_args_": [["touch", str(m)]]}]},
     "at.layers[1]._target_ is 'subprocess.call'"),
    # An allowed prefix, but reaching out through a module gan_lab imports: judged by what
    # the name resolves to.
    (lambda m: {"_target_": "gan_lab.data.registry.subprocess.call",
                "_args_": [["touch", str(m)]]},
     "(it is subprocess.call)"),
    (lambda m: {"_target_": "torch.nn.modules.module.torch.hub.load"}, "(it is torch.hub.load)"),
    # A resolver could build a new _target_ after the check: interpolations are refused.
    (lambda m: {"_target_": "torch.nn.Linear", "out_features": 1,
                "in_features": f"${{oc.create:{{_target_: os.system, _args_: [touch {m}]}}}}"},
     "at.in_features is an interpolation"),
    (lambda m: {"_target_": 3}, "at._target_ is 3"),
    (lambda m: {"_target_": "gan_lab.no_such_thing"}, "cannot be found"),
]  # fmt: skip


@pytest.mark.parametrize(("make_config", "fragment"), REFUSED_CONFIGS)
def test_safe_instantiate_checks_the_whole_config_first(make_config, fragment, tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(UserError) as info:
        safe_instantiate(make_config(marker), where="at")
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_safe_instantiate_builds_allowed_targets():
    layer = safe_instantiate({"_target_": "torch.nn.Linear", "in_features": 3, "out_features": 2})
    assert isinstance(layer, torch.nn.Linear) and layer.out_features == 2
    make_adam = safe_instantiate({"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.1})
    assert make_adam(layer.parameters()).defaults["lr"] == 0.1
