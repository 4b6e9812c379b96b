"""``python -m gan_lab.eval``: a checkpoint scored with the final-evaluation protocol."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import SHARED_DATA, train_short_run

from gan_lab.checkpoints import load_checkpoint, load_generator
from gan_lab.errors import UserError


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, session_data_dir):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    return train_short_run(tmp_path_factory.mktemp("run"), session_data_dir, steps=30)


def test_checkpoint_carries_config_and_generator(short_run):
    ckpt, config = load_checkpoint(str(short_run))
    assert config["model"]["latent_dim"] == 100 and config["data"]["image_size"] == 28
    generator, _, _ = load_generator(str(short_run / "checkpoints" / "last.ckpt"))
    with torch.no_grad():
        assert generator(torch.randn(3, 100)).shape == (3, 1, 28, 28)


def test_bad_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint at"):
        load_checkpoint(str(tmp_path / "none.ckpt"))
    (tmp_path / "trunc.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(str(tmp_path / "trunc.ckpt"))
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(UserError, match="not a gan_lab checkpoint"):
        load_checkpoint(str(tmp_path / "other.ckpt"))


@pytest.mark.slow
def test_eval_cli_writes_json(short_run, run_env, repo_root, tmp_path):
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.eval", f"ckpt_path={short_run}",
         "metrics.num_samples=500", f"out={out}", f"hydra.run.dir={tmp_path}/evalrun"],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result == json.loads((tmp_path / "evalrun" / "eval.json").read_text())
    assert result["generator_steps"] == 30 and result["dataset"] == "mnist"
    assert result["metrics_protocol"]["num_samples"] == 500
    assert result["metrics_protocol"]["label"].startswith("cheap")
    assert result["metrics"]["fid_domain"] > 0 and result["metrics"]["is_domain_mean"] >= 1


def test_eval_cli_missing_checkpoint_is_one_line(run_env, repo_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.eval", f"ckpt_path={tmp_path}/nope.ckpt",
         f"hydra.run.dir={tmp_path}/evalrun"],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "no checkpoint at" in lines[0]
