"""Experiment loggers. W&B goes offline by itself when no API key is available; the CSV
logger continues a resumed run's file."""

from __future__ import annotations

import csv
import io
import os
import secrets
import string
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from gan_lab.errors import UserError
from gan_lab.io import atomic_write

WANDB_MODES = ("auto", "online", "offline", "disabled")
RUN_ID_FILE = "wandb_run_id"
# Where launchers put a process's rank: torchrun (RANK, LOCAL_RANK, GROUP_RANK), Lightning's
# DDP launcher (LOCAL_RANK, NODE_RANK), SLURM tasks (SLURM_PROCID), jsrun (JSM_NAMESPACE_RANK).
RANK_ENV_KEYS = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID",
                 "JSM_NAMESPACE_RANK")  # fmt: skip


def is_global_rank_zero() -> bool:
    """Whether this process is global rank 0, from the environment (no Trainer exists yet).

    Global rank 0 is the process whose every rank variable is 0 (or unset). Lightning's
    ``rank_zero_only.rank`` takes only the first one set of RANK, LOCAL_RANK and SLURM_PROCID,
    so the first process of every node of a Lightning multi-node launch counts as rank 0.
    """
    return all(os.environ.get(key, "0").strip() in ("", "0") for key in RANK_ENV_KEYS)


def run_id(run_dir: Path) -> str:
    """The W&B run id of ``run_dir``: read from its ``wandb_run_id`` file, or made and saved."""
    path = run_dir / RUN_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    new_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    if is_global_rank_zero():  # only rank 0 makes the W&B run; the others read its file
        atomic_write(path, lambda f: f.write(f"{new_id}\n".encode()))
    return new_id


def log_final_summary(trainer: Any, summary: dict[str, Any]) -> None:
    """Copy the run's outcome (status, steps, final metrics) into each W&B run's summary."""
    if trainer is None:
        return
    final = {"status": summary.get("status"), "generator_steps": summary.get("generator_steps")}
    final.update({f"final/{k}": v for k, v in (summary.get("metrics") or {}).items()})
    if summary.get("error"):
        final["error"] = summary["error"]
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.summary.update(final)


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` is online only with ``WANDB_API_KEY`` set: offline never prompts or waits."""
    if mode not in WANDB_MODES:
        raise UserError(f"logger.mode must be one of {list(WANDB_MODES)}, got {mode!r}")
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


def wandb_logger(
    save_dir: str,
    mode: str = "auto",
    project: str = "gan_lab",
    entity: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    **kwargs: Any,
) -> WandbLogger:
    """A Lightning WandbLogger writing under ``save_dir``/wandb, online or offline by ``mode``."""
    mode = resolve_wandb_mode(mode)
    # One W&B run per run directory: a resumed run (same directory) continues the same W&B
    # run instead of starting a new one.
    kwargs.setdefault("id", run_id(Path(save_dir)))
    kwargs.setdefault("resume", "allow")
    # W&B reads WANDB_MODE too; set it so that a child process (DDP ranks) agrees with us.
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        save_dir=save_dir,
        project=project,
        entity=entity,
        name=name,
        group=group,
        tags=list(tags or []),
        mode=mode,
        log_model=False,
        **kwargs,
    )
    # Lightning always passes wandb.init(anonymous=None), which wandb >= 0.19 answers with a
    # deprecation warning on stderr in every run; the setting has no effect, so leave it out.
    logger._wandb_init.pop("anonymous", None)
    return logger


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that a resumed run continues metrics.csv.

    Lightning's deletes an existing metrics.csv. When continuing, the first save here keeps
    the earlier rows up to the step this run starts logging at; rows from that step on were
    logged after the checkpoint it resumed (the run was killed past it) and come again now.
    """

    def __init__(self, log_dir: str, continue_file: bool) -> None:
        self._continue_file = continue_file
        super().__init__(log_dir)
        self._continued = not continue_file

    def _check_log_dir_exists(self) -> None:
        if not self._continue_file:
            super()._check_log_dir_exists()  # a new run: Lightning's behaviour

    def save(self) -> None:
        if self.metrics and not self._continued:
            self._continued = True
            self._keep_rows_before(min(int(m["step"]) for m in self.metrics))
        super().save()

    def _keep_rows_before(self, step: int) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if r.get("step") and int(r["step"]) < step]
            fields = list(reader.fieldnames or [])
        self.metrics_keys = sorted(set(self.metrics_keys) | set(fields))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.metrics_keys)  # as Lightning writes it
        writer.writeheader()
        writer.writerows(rows)
        blob = out.getvalue().encode()
        atomic_write(path, lambda f: f.write(blob))


class ContinuingCSVLogger(CSVLogger):
    """Lightning's CSVLogger whose metrics.csv survives ``resume=`` (see _ContinuingWriter).

    ``continue_file`` is set by gan_lab.gan.fit when the run resumes a checkpoint.
    """

    continue_file: bool = False

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self.continue_file)
        return self._experiment
