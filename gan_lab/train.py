"""Train a GAN: ``python -m gan_lab.train [group=option] [key=value] [-m for sweeps]``.

A thin Hydra app over ``conf/config.yaml``; the work is in :mod:`gan_lab.training`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gan_lab.cli import (
    check_composes,
    check_group_choices,
    find_user_error,
    run_user_errors_as_one_line,
)
from gan_lab.training import fit

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def train(cfg: DictConfig) -> float | None:
    """Train one run; returns the final monitored FID (what a Hydra sweeper minimizes)."""
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        summary = fit(cfg, Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task))
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is not None:
            print(f"error: {user_error}", file=sys.stderr, flush=True)
        else:
            log.exception("run failed")
        if multirun:  # summary.json says "failed"; the other jobs of the sweep go on
            return None
        if user_error is not None:
            sys.exit(2)
        raise
    finally:
        _finish_wandb()
    monitor = summary.get("metrics_protocol", {}).get("monitor")
    return summary.get("metrics", {}).get(monitor) if monitor else None


def _finish_wandb() -> None:
    """Close the W&B run even when training failed, so multirun jobs don't share one."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def main() -> None:
    """Console-script entry point (``gan-lab-train``)."""
    run_user_errors_as_one_line(lambda: check_group_choices(sys.argv[1:]))
    run_user_errors_as_one_line(lambda: check_composes(sys.argv[1:]))
    train()


if __name__ == "__main__":
    main()
