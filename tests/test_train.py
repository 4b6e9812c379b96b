"""The training entry point end to end, as a user runs it: a smoke run and bad inputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COLD_CACHE_ARGS, run_train


@pytest.mark.slow
def test_smoke_run_writes_summary_grids_checkpoints_and_offline_wandb(run_env, repo_root, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(["experiment=smoke", f"hydra.run.dir={run_dir}"], run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["generator_steps"] == 20
    assert summary["train_images_per_second"] > 0
    assert summary["wall_seconds"] > 0 and 0 < summary["epochs"] < 1
    assert summary["metrics"]["fid_domain"] > 0 and summary["metrics"]["is_domain_mean"] >= 1
    assert summary["metrics_protocol"]["label"].startswith("cheap")
    assert summary["config"]["trainer"]["max_steps"] == 20
    assert (run_dir / "samples" / "latest.png").stat().st_size > 0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    # No API key in the environment: W&B went offline by itself.
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert offline, "no offline W&B run written"
    # Read it back with wandb's own reader: config, losses, metrics and the sample grid.
    wandb_cli = Path(sys.executable).with_name("wandb")
    inspect = [str(wandb_cli), "leet", "inspect", "--summary", "--json", str(offline[0])]
    proc = subprocess.run(inspect, capture_output=True, text=True, timeout=120)
    run = json.loads(proc.stdout)
    assert run["state"] == "finished" and run["config"]["model"]["latent_dim"] == 100
    logged = run["summary"]
    assert logged["val/fid_domain"] == pytest.approx(summary["metrics"]["fid_domain"])
    assert {"train/d_loss", "train/g_loss", "train/d_real_prob", "train/d_fake_prob"} <= set(logged)
    assert logged["samples"]["_type"].startswith("images")
    # The outcome of the run, as summary.json has it, is in the W&B summary too.
    assert logged["status"] == "completed" and logged["generator_steps"] == 20
    assert logged["final/fid_domain"] == pytest.approx(summary["metrics"]["fid_domain"])
    # The W&B run id is the run directory's (what resume=<run dir> continues).
    assert offline[0].name.endswith((run_dir / "wandb_run_id").read_text().strip())


@pytest.mark.slow
def test_readme_folder_example_runs_with_default_metrics(run_env, repo_root, tmp_path):
    """README: `python -m gan_lab.train data=folder data.root=<folder> model=dcgan64` with the
    default metrics (extractors=auto: Inception for a folder, which has no domain classifier).
    Offline: random Inception weights sit where the registry fallback leaves its file."""
    import numpy as np
    from fixtures_data import install_offline_inception, save_image

    rng = np.random.default_rng(0)
    for i in range(300):
        save_image(tmp_path / "imgs" / f"{i:03d}.png", rng.integers(0, 256, (48, 56, 3), np.uint8))
    env = {**run_env, "GAN_LAB_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "th")}
    install_offline_inception(tmp_path / "cache")
    run_dir = tmp_path / "run"
    proc = run_train(
        ["data=folder", f"data.root={tmp_path / 'imgs'}", "model=dcgan64",
         # a few steps, few samples, no W&B: the README command's defaults otherwise
         "trainer=cpu", "trainer.max_steps=2", "data.batch_size=32", "metrics.num_samples=50",
         "logger=none", f"hydra.run.dir={run_dir}"],
        env, repo_root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    protocol = summary["metrics_protocol"]
    assert summary["status"] == "completed" and protocol["monitor"] == "fid_inception"
    assert list(protocol["extractors"]) == ["inception"]
    # 300 images: a fixed tenth (30) held out, all of them compared (50 were asked for).
    assert (protocol["num_samples"], protocol["num_samples_requested"]) == (30, 50)
    assert protocol["held_out"]["images"] == 30 and protocol["label"] == "cheap (30 < 10000)"
    assert math.isfinite(summary["metrics"]["fid_inception"])  # random weights: meaningless
    assert "logits" in protocol["unavailable"]["is_inception"]


def _generator_weights(run_dir: Path) -> dict:
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return {k: v for k, v in ckpt["state_dict"].items() if k.startswith("generator.")}


@pytest.mark.slow
def test_empty_and_warm_classifier_cache_give_identical_runs(cold_cache_run, repo_root):
    """The first run trains the MNIST domain classifier inside the run (empty GAN_LAB_CACHE),
    the second loads it: the same config must give the same generator and the same metrics.

    The first is the session's cold-cache run (conftest.py: made once, first, and its
    classifier serves the other tests)."""
    import torch

    # The classifier was trained by the cold run, into its fresh cache.
    assert list((cold_cache_run.cache / "evaluators").glob("mnist-*.pt"))
    warm_dir = cold_cache_run.run_dir.parent / "warm"
    proc = run_train([*COLD_CACHE_ARGS, f"hydra.run.dir={warm_dir}"], cold_cache_run.env,
                     repo_root, timeout=1200)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries, weights = [], []
    for run_dir in (cold_cache_run.run_dir, warm_dir):
        summaries.append(json.loads((run_dir / "summary.json").read_text()))
        weights.append(_generator_weights(run_dir))
    cold, warm = summaries
    assert cold["status"] == warm["status"] == "completed"
    assert cold["metrics"] == warm["metrics"] and cold["metrics"]["fid_domain"] > 0
    assert cold["metrics_protocol"] == warm["metrics_protocol"]
    assert weights[0].keys() == weights[1].keys() and weights[0]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _assert_one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_dataset_is_one_line(run_env, repo_root):
    proc = run_train(["data=imagenet21k"], run_env, repo_root)
    _assert_one_line_error(proc, "unknown data 'imagenet21k'", "mnist")


def test_negative_latent_dim_is_one_line(run_env, repo_root, tmp_path):
    proc = run_train(["model.latent_dim=-1", f"hydra.run.dir={tmp_path}"], run_env, repo_root)
    _assert_one_line_error(proc, "model.latent_dim", "-1")


def test_model_that_does_not_fit_the_data_is_one_line(run_env, repo_root, tmp_path):
    proc = run_train(["model=dcgan64", f"hydra.run.dir={tmp_path}"], run_env, repo_root)
    _assert_one_line_error(proc, "28x28")


def test_missing_dataset_without_source_is_one_line(run_env, repo_root, tmp_path):
    run_env["GAN_LAB_DATA_DIR"] = str(tmp_path / "empty")
    run_env["GAN_LAB_DATA_MIRRORS"] = ""
    proc = run_train(
        ["data=cifar10", "data.download=false", "logger=csv", f"hydra.run.dir={tmp_path}/run"],
        run_env,
        repo_root,
    )
    _assert_one_line_error(proc, "cifar")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "cifar" in summary["error"].lower()
