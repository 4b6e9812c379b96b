"""Shared fixtures: the repo's paths, the real-data mirror beside it, isolated run env."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
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


def subprocess_env(data_dir: Path) -> dict[str, str]:
    """Environment for a ``gan_lab`` subprocess: real mirrors, no W&B key, no network W&B."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["GAN_LAB_DATA_DIR"] = str(data_dir)
    mirrors = [str(SHARED_DATA)] if SHARED_DATA.is_dir() else []
    env["GAN_LAB_DATA_MIRRORS"] = os.pathsep.join(mirrors)
    env["HYDRA_FULL_ERROR"] = "0"
    return env


@pytest.fixture()
def run_env(session_data_dir: Path, tmp_path: Path) -> dict[str, str]:
    """Environment for a ``gan_lab`` subprocess: real mirrors, no W&B key, no network W&B."""
    return subprocess_env(session_data_dir)


# ---------------------------------------------------------------- the MNIST domain classifier
# Training it takes a minute or two on a small CPU. Every run with the default metrics on MNIST
# needs it, from the user's cache ($GAN_LAB_CACHE, default ~/.cache/gan_lab); one test
# (test_train.py) must train it inside a run started with an empty cache. That run is made
# once per session, before any other test (pytest_collection_modifyitems), and its classifier
# goes into the user's cache when that has none for this data: a session starting with an
# empty cache (as CI's) trains it once, not once in that run and again for everyone else.
COLD_CACHE_ARGS = ["experiment=smoke", "trainer=cpu", "logger=none", "metrics.num_samples=256"]


@dataclass(frozen=True)
class ColdCacheRun:
    run_dir: Path  # the run started with an empty GAN_LAB_CACHE
    cache: Path  # that GAN_LAB_CACHE, holding the classifier the run trained
    env: dict[str, str]  # the run's environment (GAN_LAB_CACHE=cache)


@pytest.fixture(scope="session")
def cold_cache_run(
    tmp_path_factory: pytest.TempPathFactory, session_data_dir: Path, shared_data: Path
) -> ColdCacheRun:
    """``COLD_CACHE_ARGS`` run with an empty GAN_LAB_CACHE: it trains the classifier itself.

    Its classifier then serves the rest of the session (see above)."""
    from gan_lab.metrics.extractors.domain import classifier_path

    root = tmp_path_factory.mktemp("cold_cache")
    cache = root / "cache"
    cache.mkdir()
    env = {**subprocess_env(session_data_dir), "GAN_LAB_CACHE": str(cache)}
    run_dir = root / "cold"
    proc = run_train([*COLD_CACHE_ARGS, f"hydra.run.dir={run_dir}"], env, REPO, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = classifier_path("mnist", 28, 1, root=cache / "evaluators")
    assert trained.is_file(), f"the run left no classifier in its empty cache {cache}"
    _install_classifier(trained, classifier_path("mnist", 28, 1))
    return ColdCacheRun(run_dir, cache, env)


def _install_classifier(trained: Path, user: Path) -> None:
    """Copy ``trained`` (and its JSON copy) to ``user`` unless that is a whole classifier
    trained on the same data (a warm cache is left as it is)."""
    from gan_lab.io import atomic_write
    from gan_lab.metrics.extractors.domain import read_classifier_file

    digest = read_classifier_file(trained)[1]["data_digest"]
    try:
        if read_classifier_file(user)[1].get("data_digest") == digest:
            return
    except Exception:  # absent, unreadable, damaged: replace it
        pass
    json_copy = (trained.with_suffix(".json"), user.with_suffix(".json"))
    try:
        for src, dst in ((trained, user), json_copy):
            blob = src.read_bytes()
            atomic_write(dst, lambda f, blob=blob: f.write(blob))
    except OSError:  # a read-only cache: the tests that need it train their own, as before
        pass


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that use the cold-cache run go first: it makes the session's classifier."""
    items.sort(key=lambda item: "cold_cache_run" not in getattr(item, "fixturenames", ()))


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
