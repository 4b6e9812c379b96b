"""Checkpoint and resume: a SIGKILLed run continues to the step count of an uninterrupted one,
in its own directory and its own W&B run; bad resume requests are one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from conftest import run_train, subprocess_env

# A run short enough for a test that still crosses epochs (limit_train_batches), validates
# (at each epoch end), logs to CSV and checkpoints every EVERY steps; every other epoch starts
# with a checkpoint. Small batches: what is tested is where a run stops and goes on.
STEPS = 24
EVERY = 4
EPOCH = 6
ARGS = [
    "experiment=smoke",
    "trainer=cpu",  # fp32: bit-exact equality is only promised there
    "logger=csv",
    f"trainer.max_steps={STEPS}",
    f"+trainer.limit_train_batches={EPOCH}",
    "trainer.max_epochs=-1",
    f"callbacks.last_checkpoint.every_n_generator_steps={EVERY}",
    "trainer.enable_progress_bar=false",
    "metrics.num_samples=64",
    "data.batch_size=16",
]
TESTS_DIR = Path(__file__).resolve().parent
# name: (generator step, tests/killpoints.py kill point, step last.ckpt holds after the kill).
# One run meets them in this order: killed at each, resumed, killed at the next (each kill in
# the resumed run of the one before), then resumed to the end.
KILL_POINTS = {
    "after_sigterm": (1, "sigterm", 2),  # the run saves at its next step and stops
    "across_an_epoch_boundary": (7, "batch_start", 4),  # epoch 0 ends (and validates) at 6
    "mid_epoch": (10, "batch_start", 8),
    "right_after_a_checkpoint_at_an_epoch_start": (12, "batch_start", 12),
    "during_a_checkpoint_write": (20, "in_save", 16),
}
# The first part of a run extended by resume=<dir> with the budget of the whole run: stopped
# by a step budget mid-epoch and extended by steps; stopped by an epoch budget (at an epoch's
# end, after its validation) and extended by epochs.
EXTENSIONS = {
    "mid_epoch": (["trainer.max_steps=9"], [f"trainer.max_steps={STEPS}"]),
    "by_epochs": (
        ["trainer.max_steps=-1", "trainer.max_epochs=2"],
        [f"trainer.max_epochs={STEPS // EPOCH}"],
    ),  # fmt: skip
}


def _ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _last_step(run_dir: Path) -> int:
    """Generator steps in last.ckpt (global_step counts D and G updates: 2 per step)."""
    return _ckpt(run_dir)["global_step"] // 2


def _max_weight_difference(a: Path, b: Path) -> float:
    wa, wb = _ckpt(a)["state_dict"], _ckpt(b)["state_dict"]
    assert wa.keys() == wb.keys()
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if wa[k].numel())


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _wandb_run_ids(run_dir: Path) -> set[str]:
    return {p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*")}


@pytest.fixture()
def kill_env(run_env):
    """run_env with tests/ importable: the kill callback is tests/killpoints.py (a package
    named ``tests`` elsewhere on the path shadows this folder as a package)."""
    paths = [str(TESTS_DIR), run_env.get("PYTHONPATH", "")]
    return {**run_env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.fixture(scope="module")
def module_env(session_data_dir):
    """run_env for module-scoped runs, with tests/ importable (see kill_env)."""
    env = subprocess_env(session_data_dir)
    paths = [str(TESTS_DIR), env.get("PYTHONPATH", "")]
    return {**env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, module_env, shared_data, repo_root):
    """The reference: the same config trained in one go (the environment of run_env)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    proc = run_train([*ARGS, f"hydra.run.dir={run_dir}"], module_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@dataclass
class KilledRun:
    run_dir: Path
    kills: dict[str, dict] = field(default_factory=dict)  # kill point: what its kill left
    final: subprocess.CompletedProcess | None = None  # the resume that ran to the end


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, module_env, shared_data, repo_root) -> KilledRun:
    """ARGS killed at every kill point in turn (each in the resumed run of the one before),
    then resumed to the end. Outcomes are recorded here and checked by the tests below."""
    run = KilledRun(tmp_path_factory.mktemp("killed") / "run")
    summary = run.run_dir / "summary.json"
    for i, (point, (step, where, _)) in enumerate(KILL_POINTS.items()):
        kill = [f"callbacks.kill.step={step}", f"callbacks.kill.where={where}"]
        if i == 0:  # started afresh
            args = [*ARGS, "+callbacks.kill._target_=killpoints.KillAt",
                    *(f"+{k}" for k in kill), "+callbacks.kill.resumed=false",
                    f"hydra.run.dir={run.run_dir}"]  # fmt: skip
        else:
            args = [f"resume={run.run_dir}", *kill, "callbacks.kill.resumed=true"]
        before = summary.read_bytes() if summary.is_file() else None
        proc = run_train(args, module_env, repo_root)
        ckpt = run.run_dir / "checkpoints" / "last.ckpt"
        run.kills[point] = {
            "proc": proc,
            "summary_before": before,
            "summary_after": summary.read_bytes() if summary.is_file() else None,
            "last_step": _last_step(run.run_dir) if ckpt.is_file() else None,
            "leftovers": list((run.run_dir / "checkpoints").glob(".last.ckpt.*.tmp")),
        }
    # The kill callback is still configured; it acts only in runs started afresh.
    args = [f"resume={run.run_dir}", "callbacks.kill.resumed=false"]
    run.final = run_train(args, module_env, repo_root)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_run_leaves_the_checkpoint_before_the_kill(point, killed_run):
    step, where, saved_step = KILL_POINTS[point]
    outcome = killed_run.kills[point]
    proc = outcome["proc"]
    if where == "sigterm":
        # Stopped by itself after saving: one line naming the step and how to continue.
        assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
        assert proc.stderr.count("\n") == 1 and "resume=" in proc.stderr
        assert json.loads(outcome["summary_after"])["status"] == "interrupted"
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        # Nothing ran after the kill: no summary.json written (or rewritten).
        assert outcome["summary_after"] == outcome["summary_before"]
    assert outcome["last_step"] == saved_step
    # The half-written file, beside a whole one
    assert bool(outcome["leftovers"]) == (where == "in_save")


@pytest.mark.slow
def test_killed_and_resumed_run_equals_the_uninterrupted_one(killed_run, uninterrupted):
    """Killed at every kill point and resumed after each: the weights, metrics and log of
    the run trained in one go."""
    run_dir = killed_run.run_dir
    assert killed_run.final.returncode == 0, killed_run.final.stderr[-3000:]
    difference = _max_weight_difference(run_dir, uninterrupted)
    print(f"killed at {', '.join(KILL_POINTS)} and resumed: max |dw| = {difference}")
    assert difference == 0.0
    resumed, reference = _summary(run_dir), _summary(uninterrupted)
    assert resumed["status"] == "completed"
    assert resumed["metrics_history"] == reference["metrics_history"]
    assert [h["step"] for h in reference["metrics_history"]] == [6, 12, 18, 24]
    assert resumed["metrics"] == reference["metrics"]
    for key in ("generator_steps", "epochs", "train_images"):  # counters span the whole run
        assert resumed[key] == reference[key], key
    # The CSV log continues across every resume: the same rows, step for step.
    csv_resumed = (run_dir / "csv" / "metrics.csv").read_text()
    assert csv_resumed == (uninterrupted / "csv" / "metrics.csv").read_text()
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize("extension", list(EXTENSIONS))
def test_extending_a_finished_run_equals_training_longer_at_once(
    extension, uninterrupted, run_env, repo_root, tmp_path
):
    """A run that ended (mid-epoch by max_steps, or at an epoch's end by max_epochs), then
    ``resume=<dir>`` with a larger budget: the weights and the log of one longer run."""
    first, more = EXTENSIONS[extension]
    run_dir = tmp_path / "run"
    proc = run_train([*ARGS, *first, f"hydra.run.dir={run_dir}"], run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _summary(run_dir)["generator_steps"] < STEPS
    proc = run_train([f"resume={run_dir}", *more], run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _summary(run_dir)["generator_steps"] == STEPS
    difference = _max_weight_difference(run_dir, uninterrupted)
    print(f"extension {extension}: max |dw| = {difference}")
    assert difference == 0.0

    # The training rows of the log are the uninterrupted run's (the first part may have
    # validated its final weights where the longer run did not).
    def train_rows(run: Path) -> list[str]:
        lines = (run / "csv" / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        loss = header.index("train/g_loss")
        return [line for line in lines[1:] if line.split(",")[loss]]

    assert train_rows(run_dir) == train_rows(uninterrupted)


@pytest.mark.slow
def test_resumed_run_keeps_its_directory_and_wandb_run(kill_env, repo_root, tmp_path):
    """A SIGKILLed run with the default W&B logger continues in the same directory and the
    same (offline) W&B run."""
    run_dir = tmp_path / "run"
    args = ["experiment=smoke", "trainer.max_steps=12",
            "callbacks.last_checkpoint.every_n_generator_steps=5",
            "trainer.enable_progress_bar=false", "metrics=none"]  # fmt: skip
    kill = ["+callbacks.kill._target_=killpoints.KillAt", "+callbacks.kill.step=7"]
    proc = run_train([*args, *kill, f"hydra.run.dir={run_dir}"], kill_env, repo_root)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    proc = run_train([f"resume={run_dir}"], kill_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _summary(run_dir)["generator_steps"] == 12
    assert (run_dir / "wandb_run_id").read_text().strip() == run_id
    assert _wandb_run_ids(run_dir) == {run_id}  # both W&B segments: one run id
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2
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
