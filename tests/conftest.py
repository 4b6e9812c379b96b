"""Shared fixtures: the repo's paths, the real-data mirror beside it, isolated run env."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _shared_data() -> Path:
    """The real-data mirror: ``../shared/data`` beside the repo (as CI has it), else the first
    folder of GAN_LAB_DATA_MIRRORS that holds MNIST."""
    beside = REPO.parent / "shared" / "data"
    candidates = [
        beside,
        *(Path(p) for p in os.environ.get("GAN_LAB_DATA_MIRRORS", "").split(":") if p),
    ]
    return next((c for c in candidates if (c / "mnist").is_dir()), beside)


SHARED_DATA = _shared_data()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real-data mirror {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir per test session, so datasets are decoded once and shared by tests."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture()
def run_env(session_data_dir: Path, tmp_path: Path) -> dict[str, str]:
    """Environment for a ``gan_lab`` subprocess: real mirrors, no W&B key, no network W&B."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["GAN_LAB_DATA_DIR"] = str(session_data_dir)
    mirrors = [str(SHARED_DATA)] if SHARED_DATA.is_dir() else []
    env["GAN_LAB_DATA_MIRRORS"] = os.pathsep.join(mirrors)
    env["HYDRA_FULL_ERROR"] = "0"
    return env


def compose_config(overrides: list[str], output_dir: Path):
    """The composed training config as ``gan_lab.train`` sees it (no hydra node).

    HydraConfig is set so that ``${hydra:...}`` interpolations resolve, as in a real run.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[f"paths.output_dir={output_dir}", *overrides],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    # A Hydra app's task function never sees the hydra node; resolving it needs a job number.
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def run_train(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 600):
    """Run ``python -m gan_lab.train ARGS`` as a user would; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "gan_lab.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_short_run(run_dir: Path, data_dir: Path, steps: int = 20) -> Path:
    """A few real generator steps on real MNIST (no metrics, no logger); returns run_dir."""
    from gan_lab.gan.fit import fit

    cfg = compose_config(
        ["logger=none", "metrics=none", "trainer=cpu", f"trainer.max_steps={steps}",
         "trainer.enable_progress_bar=false", "data.batch_size=32",
         f"paths.data_dir={data_dir}", f"paths.data_mirrors={SHARED_DATA}"],
        run_dir,
    )  # fmt: skip
    fit(cfg, run_dir)
    return run_dir


def module_options(**overrides):
    """GANModule's settings as conf/module/gan.yaml gives them (their one home), overridden."""
    from omegaconf import OmegaConf

    from gan_lab.config import CONF_DIR

    options = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "module" / "gan.yaml"))
    options.pop("_target_")
    return {**options, **overrides}
