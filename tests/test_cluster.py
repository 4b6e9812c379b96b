"""SLURM launcher and Optuna sweeper configs: composed as Hydra composes them, and a real
(tiny) Optuna search."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import REPO, run_train
from hydra import compose, initialize_config_dir

from gan_lab.config import hydra_quoted


def _compose(overrides: list[str]):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_composes_with_its_knobs():
    cfg = _compose(["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                    "hydra.launcher.gpus_per_node=4", "hydra.launcher.tasks_per_node=4",
                    "hydra.launcher.timeout_min=60", "trainer=ddp",
                    "trainer.devices=4"])  # fmt: skip
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 4, 4)
    assert launcher.timeout_min == 60 and launcher.nodes == 1
    assert launcher.submitit_folder.endswith(".submitit/%j")
    assert cfg.trainer.strategy == "ddp_find_unused_parameters_true"


def test_slurm_launcher_defaults_are_one_gpu_per_job():
    launcher = _compose(["hydra/launcher=slurm"]).hydra.launcher
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.partition) == (1, 1, None)


def test_fid_search_minimizes_over_lr_betas_latent_dim_and_n_disc():
    sweeper = _compose(["hydra/sweeper=fid_search"]).hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "minimize"
    assert set(sweeper.params) == {"optimizer.lr", "optimizer.beta1", "optimizer.beta2",
                                   "model.latent_dim", "module.n_disc"}  # fmt: skip
    # Every searched key exists in the training config.
    cfg = _compose([f"{key}={value}" for key, value in {
        "optimizer.lr": 1e-4, "optimizer.beta1": 0.3, "optimizer.beta2": 0.99,
        "model.latent_dim": 50, "module.n_disc": 2}.items()])  # fmt: skip
    assert list(cfg.optimizer.generator.betas) == [0.3, 0.99]


@pytest.mark.slow
def test_optuna_search_runs_and_reports_the_best_fid(run_env, repo_root, tmp_path):
    sweep = tmp_path / "search"
    args = ["-m", "hydra/sweeper=fid_search", "hydra.sweeper.n_trials=3", "experiment=smoke",
            "logger=csv", "trainer.max_steps=5", "trainer.enable_progress_bar=false",
            f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"]  # fmt: skip
    proc = run_train(args, run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    fids = [json.loads((sweep / str(i) / "summary.json").read_text())["metrics"]["fid_domain"]
            for i in range(3)]  # fmt: skip
    assert result["best_value"] == pytest.approx(min(fids))
    assert set(result["best_params"]) == {"optimizer.lr", "optimizer.beta1", "optimizer.beta2",
                                          "model.latent_dim", "module.n_disc"}  # fmt: skip


@pytest.mark.slow
def test_optuna_search_keeps_its_study_in_sqlite(run_env, repo_root, tmp_path):
    """storage=sqlite:///... (what fid_search.yaml suggests) keeps every trial in the file.

    optuna 2.x (what hydra-optuna-sweeper 1.x allows) cannot use SQLAlchemy 2: its alembic
    stamp is never committed and create_study fails; the cluster extra pins sqlalchemy<2.
    """
    optuna = pytest.importorskip("optuna")
    sweep, db = tmp_path / "search", tmp_path / "study.db"
    args = ["-m", "hydra/sweeper=fid_search", "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.storage={hydra_quoted(f'sqlite:///{db}')}", "experiment=smoke",
            "logger=none", "trainer.max_steps=2", "metrics.num_samples=64",
            "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=${hydra.job.num}"]  # fmt: skip
    proc = run_train(args, run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="gan_lab_fid", storage=f"sqlite:///{db}")
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    fids = [json.loads((sweep / str(i) / "summary.json").read_text())["metrics"]["fid_domain"]
            for i in range(2)]  # fmt: skip
    assert sorted(t.value for t in trials) == pytest.approx(sorted(fids))
    assert study.best_value == pytest.approx(min(fids))
