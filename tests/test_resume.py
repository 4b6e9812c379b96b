"""Checkpoint and resume: a SIGKILLed run continues to the step count of an uninterrupted one,
in its own directory and its own W&B run; bad resume requests are one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_train

STEPS = 60
EVERY = 10
ARGS = [
    "experiment=smoke",
    f"trainer.max_steps={STEPS}",
    f"callbacks.last_checkpoint.every_n_generator_steps={EVERY}",
    "trainer.enable_progress_bar=false",
    "metrics.num_samples=64",
]


def _last_step(ckpt: Path) -> int:
    """Generator steps in a checkpoint (global_step counts D and G updates: 2 per step)."""
    return torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] // 2


def _wandb_run_ids(run_dir: Path) -> set[str]:
    return {p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*")}


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_uninterrupted_step_count(run_env, repo_root, tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "gan_lab.train", *ARGS, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=repo_root, env=run_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    try:
        # Kill mid-run: after the 2nd periodic checkpoint, well before the end (step 60).
        while time.monotonic() < deadline:
            if last.is_file() and _last_step(last) >= 2 * EVERY:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed_at = _last_step(last)
    assert 2 * EVERY <= killed_at < STEPS
    summary_before = run_dir / "summary.json"
    assert not summary_before.exists()  # SIGKILL: nothing after the kill ran
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    noise_before = torch.load(last, weights_only=False)["state_dict"]["fixed_noise"]
    optim_before = torch.load(last, weights_only=False)["optimizer_states"]
    assert optim_before[0]["state"], "no optimizer state in the checkpoint"

    proc = run_train([f"resume={run_dir}"], run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["generator_steps"] == STEPS  # as many as an uninterrupted run
    # It trained only the steps after the checkpoint, not from zero.
    assert summary["train_images"] == (STEPS - killed_at) * 64
    assert (run_dir / "wandb_run_id").read_text().strip() == run_id
    assert _wandb_run_ids(run_dir) == {run_id}  # both W&B segments: one run id
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2
    resumed = torch.load(last, weights_only=False)
    assert _last_step(last) == STEPS
    assert torch.equal(resumed["state_dict"]["fixed_noise"], noise_before)
    assert [d for d in tmp_path.iterdir()] == [run_dir]  # no second run directory


def test_resume_of_a_directory_that_is_not_a_run_is_one_line(run_env, repo_root, tmp_path):
    proc = run_train([f"resume={tmp_path}"], run_env, repo_root)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: resume=")
    assert "overrides.yaml" in proc.stderr


def test_ckpt_path_last_without_checkpoint_is_one_line(run_env, repo_root, tmp_path):
    proc = run_train(["ckpt_path=last", "logger=none", f"hydra.run.dir={tmp_path}"], run_env,
                     repo_root)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "ckpt_path=last" in proc.stderr
    assert "resume=" in proc.stderr
