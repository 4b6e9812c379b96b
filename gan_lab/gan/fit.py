"""Build the data, module, callbacks, loggers and Trainer from a composed config, and fit."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import UserError, find_user_error
from gan_lab.gan.callbacks import AtomicCheckpointIO, BestCheckpoint, RunStats
from gan_lab.gan.callbacks.checkpointing import LAST_NAME, Interrupted
from gan_lab.gan.callbacks.progress_bar import host_scalars_progress_bar
from gan_lab.gan.checkpoints import check_checkpoint_readable, resolve_ckpt_path
from gan_lab.gan.distributed import isolated_job, use_job_subprocess_cmd
from gan_lab.gan.loggers import ContinuingCSVLogger, log_final_summary
from gan_lab.gan.module import GANModule
from gan_lab.gan.objectives import Objective
from gan_lab.gan.summary import write_summary

log = logging.getLogger(__name__)


# The trainer.precision values gan_lab documents (Lightning takes a few aliases more).
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "32", "16",
              "bf16", "64")  # fmt: skip


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16: oneDNN runs bf16 convolutions natively rather than emulated."""
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def cuda_has_native_bf16() -> bool:
    """Ampere (compute capability 8.0) and newer run bf16 tensor-core kernels natively."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` precision, per device class (README "Performance" has the measurements):
    bf16 autocast on CUDA GPUs with native bf16 (Ampere and newer: fp32's range, so no grad
    scaler and no overflow), fp16 autocast with a grad scaler on older GPUs; bf16 autocast on a
    CPU with native bf16 (about 1.8x fp32 on the 64x64 DCGAN, FID within seed noise); fp32
    elsewhere."""
    if precision != "auto":
        if str(precision) not in PRECISIONS:
            raise UserError(
                f"trainer.precision={precision!r} is not one of: auto, {', '.join(PRECISIONS)}"
            )
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if cuda_has_native_bf16() else "16-mixed"
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto" and not torch.backends.mps.is_available()
    )
    return "bf16-mixed" if on_cpu and cpu_has_native_bf16() else "32-true"


def check_optimizer(name: str, factory: Any) -> Any:
    """``factory`` (a partial optimizer from ``optimizer.<name>``), tried on one parameter so
    that a bad setting (a negative lr, a beta outside [0, 1)) is one line before training."""
    try:
        factory([torch.nn.Parameter(torch.zeros(1))])
    except (ValueError, TypeError) as err:
        raise UserError(
            f"optimizer.{name}: {err}; fix the optimizer settings (e.g. optimizer.lr=2e-4)"
        ) from None
    return factory


def build_module(cfg: DictConfig) -> GANModule:
    """``instantiate(cfg.module)`` (GANModule and its settings), given the networks, the
    optimizers and the objective built from their own groups."""
    if cfg.module.get("compile", False):
        # Every compiled module shares one code object (nn.Module._call_impl) whose dynamo
        # cache holds recompile_limit (8) entries: in a multirun's one process, jobs after the
        # second would silently run eagerly. Each job's networks start from an empty cache.
        torch._dynamo.reset()
    module = instantiate(
        cfg.module,
        generator=instantiate(cfg.model.generator),
        discriminator=instantiate(cfg.model.discriminator),
        generator_optimizer=check_optimizer("generator", instantiate(cfg.optimizer.generator)),
        discriminator_optimizer=check_optimizer(
            "discriminator", instantiate(cfg.optimizer.discriminator)
        ),
        objective=Objective(
            loss=instantiate(cfg.loss),
            # none.yaml is an empty node: no regularizer, no augmentation
            regularizer=instantiate(cfg.regularizer) if cfg.get("regularizer") else None,
            augment=instantiate(cfg.augment) if cfg.get("augment") else None,
        ),
        latent_dim=cfg.model.latent_dim,
        seed=cfg.seed,
    )
    # Set after instantiate, which would treat this dict as config and build its _target_s.
    module.config = OmegaConf.to_container(cfg, resolve=True)
    return module


def build_metrics(cfg: DictConfig, datamodule: Any) -> Any:
    """The validation-metrics callback, or None for ``metrics=none``.

    A preset may set ``metrics.num_samples`` on top of ``metrics=none``: a metrics node with
    no ``_target_`` is "no metrics" too.
    """
    metrics_cfg = cfg.get("metrics")
    if not metrics_cfg or "_target_" not in metrics_cfg:
        return None
    return instantiate(metrics_cfg, datamodule=datamodule)


def build_loggers(cfg: DictConfig) -> list[Any]:
    if not cfg.get("logger"):
        return []
    return [instantiate(cfg.logger)]


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback], loggers: list[Any]) -> L.Trainer:
    """``instantiate(cfg.trainer)``, with ``precision: auto`` resolved and ``max_steps`` counted
    in generator updates (see GANModule); callbacks, loggers and the atomic checkpoint writer
    are added here because they are built from other groups."""
    settings = cfg.trainer
    for key in ("max_steps", "max_epochs"):
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise UserError(f"trainer.{key} must be an integer (-1: no limit), got {value!r}")
    max_steps = settings.get("max_steps", -1)
    if max_steps > 0:
        max_steps *= cfg.module.n_disc + 1  # Lightning counts every optimizer step
    use_job_subprocess_cmd()  # DDP child ranks re-run this job, not the sweep
    if settings.get("enable_progress_bar", True) and not any(
        isinstance(c, ProgressBar) for c in callbacks
    ):
        callbacks = [*callbacks, host_scalars_progress_bar()]  # no host sync per step
    try:
        return instantiate(
            settings,
            precision=resolve_precision(settings.precision, settings.accelerator),
            max_steps=max_steps,
            callbacks=callbacks,
            logger=loggers or False,
            plugins=[AtomicCheckpointIO()],
        )
    except Exception as err:
        # Lightning checks its own arguments; they are all trainer.<key> here. Hydra wraps
        # what the Trainer raises in an InstantiationException: report the cause.
        cause = err.__cause__ or err
        if not isinstance(cause, (TypeError, ValueError, MisconfigurationException)):
            raise
        raise UserError(f"bad trainer setting: {cause}; see conf/trainer/default.yaml") from None


def resolve_resume_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """A checkpoint file, a run directory (its last.ckpt), or ``last``: this run directory's
    ``checkpoints/last.ckpt``, which must exist (Lightning would silently start afresh)."""
    if ckpt_path is None:
        return None
    if str(ckpt_path) != "last":
        path = resolve_ckpt_path(ckpt_path)
    else:
        path = run_dir / "checkpoints" / LAST_NAME
        if not path.is_file():
            raise UserError(
                f"ckpt_path=last: no {path}; to continue an earlier run use resume=<its run dir>"
            )
    check_checkpoint_readable(path)
    return str(path)


def route_lightning_logs() -> None:
    """Send Lightning's messages through the root logger (Hydra's console and train.log).

    Lightning gives its loggers their own stderr handlers when imported before logging is set
    up; those lines would land on stderr around a one-line user error.
    """
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def fit(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train per ``cfg`` and write ``run_dir/summary.json``; returns the summary.

    ``overrides`` (the command line's, as Hydra saw them) go into the summary: sweep reports
    group runs by them.
    """
    route_lightning_logs()
    # Lightning 2.6 under torch >= 2.10 warns on every run about its own use of a deprecated
    # torch API; the user can do nothing about it, and it would sit on stderr above errors.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
    # Its model summary says it sizes bf16 weights as fp32, on every bf16-mixed run (the CPU
    # default where bf16 is native): nothing to act on either.
    warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")
    stats = RunStats()
    summary: dict[str, Any] = {
        "status": "failed",
        "run_dir": str(run_dir),
        "overrides": list(overrides or []),
    }
    with isolated_job():
        return _fit(cfg, run_dir, stats, summary)


def _fit(cfg: DictConfig, run_dir: Path, stats: RunStats, summary: dict[str, Any]) -> dict:
    trainer = module = metrics = None
    try:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        datamodule = instantiate(cfg.data)
        module = build_module(cfg)
        metrics = build_metrics(cfg, datamodule)
        callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]
        callbacks += [stats] + ([metrics] if metrics is not None else [])
        loggers = build_loggers(cfg)
        for logger in loggers:
            if isinstance(logger, ContinuingCSVLogger):
                logger.continue_file = bool(cfg.get("ckpt_path"))  # a resume appends
        trainer = build_trainer(cfg, callbacks, loggers)
        config = OmegaConf.to_container(cfg, resolve=True)
        for logger in loggers:
            logger.log_hyperparams(config)
        ckpt_path = resolve_resume_path(cfg.get("ckpt_path"), run_dir)
        if ckpt_path:
            log.info("resuming from %s", ckpt_path)
        # weights_only: a checkpoint holds tensors and plain containers only; nothing in it runs.
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        if trainer.interrupted:
            raise KeyboardInterrupt
        # The last validation may have come before the last step: evaluate (metrics and sample
        # grid) the final weights.
        if stats.last_validation_step != module.generator_steps:
            trainer.validate(module, datamodule=datamodule, verbose=False)
            for callback in trainer.callbacks:
                if isinstance(callback, BestCheckpoint):
                    callback.rank_final_weights(trainer)
        summary.update(status="completed")
        return summary
    except BaseException as err:
        user_error = find_user_error(err)
        error = str(user_error) if user_error else f"{type(err).__name__}: {err}"
        summary["error"] = " ".join(error.split())  # one line, as the console shows it
        if isinstance(user_error, Interrupted):
            summary["status"] = "interrupted"
        raise
    finally:
        summary.update(_progress(trainer, module))
        summary.update(stats.summary())
        if trainer is None or trainer.is_global_zero:
            summary["metrics"] = metrics.last_results if metrics is not None else {}
            if metrics is not None:
                summary["metrics_protocol"] = metrics.protocol()
                summary["metrics_history"] = metrics.history
            summary["config"] = OmegaConf.to_container(cfg, resolve=True)
            if module is not None and module.skipped_steps:
                summary["skipped_steps"] = module.skipped_steps
            write_summary(_summary_path(cfg, run_dir, summary, stats), summary)
            log_final_summary(trainer, summary)
            log.info("summary: %s", run_dir / "summary.json")


def _summary_path(cfg: DictConfig, run_dir: Path, summary: dict[str, Any], stats: RunStats) -> Path:
    """summary.json, except for a resume that failed before training on: its error goes to
    resume_error.json beside the run, and the run's own summary stays as it was."""
    path = run_dir / "summary.json"
    failed_resume = cfg.get("ckpt_path") and summary["status"] == "failed" and path.is_file()
    if failed_resume and stats.train_images_this_process == 0:
        return run_dir / "resume_error.json"
    return path


def _progress(trainer: L.Trainer | None, module: GANModule | None) -> dict[str, Any]:
    if trainer is None or module is None or module._trainer is None:
        return {"generator_steps": 0, "epochs": 0.0}
    steps = module.generator_steps
    per_epoch = trainer.num_training_batches
    epochs = steps / per_epoch if per_epoch and per_epoch != float("inf") else 0.0
    return {"generator_steps": steps, "epochs": round(epochs, 4)}
