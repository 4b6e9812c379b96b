"""DDP with 2 CPU processes (gloo) under Hydra, and multirun jobs that fail independently.

In the spirit of lightning-hydra-template's ddp_sim: the real launcher, real child processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import SHARED_DATA, compose_config, run_train
from hydra.utils import instantiate

from gan_lab.gan.fit import build_module

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
SMOKE = ["experiment=smoke", "logger=csv", "trainer.enable_progress_bar=false"]


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _one_process_metrics(run_dir: Path, data_dir: Path) -> dict[str, float]:
    """The run's validation metrics recomputed in one process from its last checkpoint."""
    cfg = compose_config(
        ["experiment=smoke", "logger=none", "metrics.prdc=true", f"paths.data_dir={data_dir}",
         f"paths.data_mirrors={SHARED_DATA}"],
        run_dir / "recheck",
    )  # fmt: skip
    datamodule = instantiate(cfg.data)
    module = build_module(cfg)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    module.load_state_dict(ckpt["state_dict"])
    metrics = instantiate(cfg.metrics, datamodule=datamodule)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[metrics],
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.validate(module, datamodule=datamodule, verbose=False)
    return metrics.last_results


@pytest.mark.slow
def test_two_process_ddp_run_matches_one_process(run_env, repo_root, tmp_path, session_data_dir):
    run_dir = tmp_path / "ddp"
    # fp32, as the one-process re-scoring below: precision=auto would be bf16 on this CPU,
    # and the generated images would then differ in their last bits.
    args = [*SMOKE, *DDP, "trainer.precision=32-true", "metrics.prdc=true",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    proc = run_train(args, run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(run_dir)
    assert summary["status"] == "completed"
    assert summary["generator_steps"] == 20  # the same step count as a 1-process smoke run
    assert summary["config"]["trainer"]["devices"] == 2
    assert summary["train_images"] == 20 * 64 * 2  # both ranks trained
    # Rank 1 ran in this job's directory (its own log file), and made no directory of its own.
    assert (run_dir / "train_rank1.log").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert not (repo_root / "outputs" / "smoke").exists() or not any(
        (p / "train_rank1.log").exists() for p in (repo_root / "outputs" / "smoke").iterdir()
    )
    # The metrics of 2 ranks equal those of one process scoring the same generator.
    single = _one_process_metrics(run_dir, session_data_dir)
    assert summary["metrics"]["fid_domain"] == pytest.approx(single["fid_domain"], rel=1e-5)
    # IS splits its samples after a random permutation (torchmetrics), so only close.
    assert summary["metrics"]["is_domain_mean"] == pytest.approx(single["is_domain_mean"], 0.02)
    # Precision/recall/density/coverage over the generated features gathered from both ranks
    # (rank 0 computes, then broadcasts) equal one process's over the same generator.
    for part in ("precision", "recall", "density", "coverage"):
        name = f"{part}_domain"
        assert summary["metrics"][name] == pytest.approx(single[name], abs=1e-9), name


@pytest.mark.slow
def test_ddp_multirun_makes_one_directory_per_job(run_env, repo_root, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *SMOKE, *DDP, "trainer.max_steps=5", "model.latent_dim=16,32",
            f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"]  # fmt: skip
    proc = run_train(args, run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1"]  # children re-ran their job, not the sweep
    for job in jobs:
        summary = _summary(sweep / job)
        assert summary["status"] == "completed", summary.get("error")
        assert summary["generator_steps"] == 5
        assert (sweep / job / "train_rank1.log").is_file()


@pytest.mark.slow
def test_a_failing_multirun_job_is_recorded_and_the_others_complete(run_env, repo_root, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", *SMOKE, "trainer.max_steps=5", "model.latent_dim=8,16,0,32",
            f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"]  # fmt: skip
    proc = run_train(args, run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = {p.name: _summary(p) for p in sorted(sweep.iterdir()) if p.is_dir()}
    assert [s["status"] for s in status.values()] == ["completed", "completed", "failed",
                                                      "completed"]  # fmt: skip
    assert "model.latent_dim must be a positive integer, got 0" in status["2"]["error"]
    assert "error: model.latent_dim" in proc.stderr  # and said so on the console
