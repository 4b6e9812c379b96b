"""Train a GAN: ``python -m gan_lab.train [group=option] [key=value] [-m for sweeps]``.

A thin Hydra app over ``conf/config.yaml``; the work is in :mod:`gan_lab.gan.fit`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gan_lab.commands.cli import (
    check_composes,
    check_group_choices,
    rename_moved_keys,
    run_user_errors_as_one_line,
)
from gan_lab.config import CONF_DIR, hydra_quoted
from gan_lab.errors import UserError, find_user_error

# torch and Lightning (about 10 s to import on a small CPU) are imported only once the
# arguments have passed the checks below, so a mistyped override is reported at once.

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def train(cfg: DictConfig) -> float | None:
    """Train one run; returns the final monitored FID (what a Hydra sweeper minimizes)."""
    from gan_lab.gan.callbacks.checkpointing import Interrupted
    from gan_lab.gan.fit import fit

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
        interrupted = isinstance(user_error, Interrupted)
        if multirun and not interrupted:  # summary.json says "failed"; the other jobs go on
            return None
        if user_error is not None:  # a stop signal ends a sweep too (preemption, Ctrl+C)
            sys.exit(getattr(user_error, "exit_code", 2))  # 128 + N after a stop signal
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


def expand_resume(args: list[str]) -> list[str]:
    """``resume=<run dir>`` becomes that run's own overrides, its directory and its last.ckpt.

    Other overrides given with it are kept (after the run's, so they win), e.g. a larger
    ``trainer.max_steps`` to extend a finished run.
    """
    values = [a.split("=", 1)[1] for a in args if a.startswith("resume=")]
    if not values or values[-1] in ("", "null"):
        return args
    if "-m" in args or "--multirun" in args:
        raise UserError("resume=<run dir> continues one run; drop -m/--multirun")
    run_dir = Path(values[-1]).expanduser().resolve()
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise UserError(
            f"resume={values[-1]}: {saved} not found; pass a run directory made by "
            "gan_lab.train (it holds .hydra/ and checkpoints/)"
        )
    from gan_lab.gan.callbacks.checkpointing import LAST_NAME
    from gan_lab.gan.checkpoints import check_checkpoint_readable

    last = run_dir / "checkpoints" / LAST_NAME
    if not last.is_file():
        raise UserError(
            f"resume={values[-1]}: no {last} (the run stopped before its first checkpoint); "
            "start it again, or lower callbacks.last_checkpoint.every_n_generator_steps"
        )
    check_checkpoint_readable(last)
    own = [o for o in OmegaConf.load(saved) if not o.startswith(("resume=", "ckpt_path="))]
    extra = [a for a in args if not a.startswith(("resume=", "ckpt_path="))]
    return [*own, *extra, f"hydra.run.dir={hydra_quoted(str(run_dir))}",
            f"ckpt_path={hydra_quoted(str(last))}"]  # fmt: skip


def main() -> None:
    """Console-script entry point (``gan-lab-train``)."""
    sys.argv[1:] = run_user_errors_as_one_line(lambda: expand_resume(sys.argv[1:]))
    sys.argv[1:] = rename_moved_keys(sys.argv[1:])
    run_user_errors_as_one_line(lambda: check_group_choices(sys.argv[1:]))
    run_user_errors_as_one_line(lambda: check_composes(sys.argv[1:]))
    train()


if __name__ == "__main__":
    main()
