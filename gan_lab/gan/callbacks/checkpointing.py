"""Checkpoints in gan_lab's units: ``last.ckpt`` every N generator steps, ``best.ckpt`` by FID.

Lightning's ModelCheckpoint counts ``trainer.global_step`` (every optimizer step, so
``n_disc + 1`` per batch here) and, under manual optimization with ``every_n_train_steps``,
warns on every save. ``LastCheckpoint`` is a small callback of our own for the periodic
"last" file; ranking by FID stays with ModelCheckpoint (``BestCheckpoint``). Every file is
written through :class:`AtomicCheckpointIO`, so a kill during a save never leaves a corrupt
``last.ckpt``: the previous one stays until the new one is complete.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint

from gan_lab.errors import UserError
from gan_lab.io import atomic_write

LAST_NAME = "last.ckpt"
log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temp file beside the target, then ``os.replace`` onto it."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_write(Path(path), lambda f: torch.save(checkpoint, f))


def as_next_batch_start(checkpoint: dict[str, Any], trainer: L.Trainer, at_train_end: bool) -> None:
    """Store Lightning's loop counters as they are at the start of the next training batch.

    Lightning resumes a checkpoint saved at a batch start by counting that batch as not yet
    run, but it also adds one to ``_batches_that_stepped`` (the loggers' step) on restart;
    the stored value is one less to make up for it. A save at the end of training gets the
    same form, so that raising ``trainer.max_steps`` or ``max_epochs`` on resume continues
    as an uninterrupted run does. Lightning marks the last epoch as finished there even when
    a step budget stopped it in the middle (it would start a new epoch), and when that
    epoch did end it would restart it empty; both become "the next batch is about to start".
    """
    loops = checkpoint["loops"]["fit_loop"]
    loops["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1
    if not at_train_end:
        return
    batches = loops["epoch_loop.batch_progress"]
    epochs = loops["epoch_progress"]
    if batches["current"]["completed"] < trainer.num_training_batches:
        # Stopped mid-epoch: this epoch goes on.
        for part in ("total", "current"):
            done = epochs[part]["ready"] - 1
            epochs[part].update(started=done + 1, processed=done, completed=done)
    else:
        # The epoch ended (and validated): the first batch of the next one is about to start.
        for part in ("total", "current"):
            done = epochs[part]["completed"]
            epochs[part].update(ready=done + 1, started=done + 1)
        batches["current"].update(ready=0, started=0, processed=0, completed=0)
        loops["epoch_loop.val_loop.batch_progress"]["total"].update(
            ready=0, started=0, processed=0, completed=0
        )
    for part in ("total", "current"):
        done = batches[part]["completed"]
        batches[part].update(ready=done + 1, started=done, processed=done)
    batches["is_last_batch"] = False


class Interrupted(UserError):
    """A stop signal ended training after last.ckpt was written; ``resume=`` continues it."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for "ended by signal N"


class LastCheckpoint(L.Callback):
    """Write ``<dirpath>/last.ckpt`` every ``every_n_generator_steps``, when training ends, and
    when a stop signal (SIGTERM, SIGINT, SIGUSR1: preemption, Ctrl+C, SLURM's warning) comes.

    A periodic or signalled save happens at the start of the next training batch: after the
    step and any validation that followed it, before the next step draws its noise. That is
    the one point where the whole state (weights, optimizers, RNG states, the data position,
    metric history) is consistent, so a run killed at any moment continues from it exactly
    (``resume=<run dir>``), losing only the steps since the save. A signal is only noted when
    it arrives; the save and the exit follow at that point (a second Ctrl+C stops at once).
    """

    STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")

    def __init__(self, dirpath: str, every_n_generator_steps: int = 500) -> None:
        if not isinstance(every_n_generator_steps, int) or every_n_generator_steps < 1:
            raise UserError(
                "callbacks.last_checkpoint.every_n_generator_steps must be a positive integer, "
                f"got {every_n_generator_steps!r}"
            )
        self.dirpath = Path(dirpath)
        self.every = every_n_generator_steps
        self._saved_at = -1
        self._signal: int | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._launcher: Any = None
        self._saving: str | None = None  # where a save of ours is being made

    @property
    def path(self) -> Path:
        return self.dirpath / LAST_NAME

    def _save(self, trainer: L.Trainer, step: int, at_train_end: bool = False) -> None:
        if step == self._saved_at:
            return
        # Flush the loggers first, so their files hold every step the checkpoint holds.
        for logger in trainer.loggers:
            logger.save()
        self._saving = "train_end" if at_train_end else "batch_start"
        try:
            trainer.save_checkpoint(self.path)  # every rank calls it; rank 0 writes
        finally:
            self._saving = None
        self._saved_at = step

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]
    ) -> None:
        if self._saving is not None:
            as_next_batch_start(checkpoint, trainer, self._saving == "train_end")

    # ------------------------------------------------------------------ stop signals
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl+C: stop now, without a save
        # Only note it (logging here could re-enter a stream the main code is writing).
        self._signal = signum
        launcher = self._launcher
        if launcher is not None and signum != signal.SIGINT:
            launcher.kill(signum)  # DDP ranks this process started (Ctrl+C reaches them all)

    def _install_handlers(self, trainer: L.Trainer) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only
        self._launcher = trainer.strategy.launcher
        signums = {getattr(signal, name) for name in self.STOP_SIGNALS if hasattr(signal, name)}
        # Under SLURM, Lightning's SLURMEnvironment knows the signal the job was told to expect
        # before its time limit (sbatch --signal); it may be another than SIGUSR1.
        environment = getattr(trainer._accelerator_connector, "cluster_environment", None)
        if isinstance(environment, SLURMEnvironment) and environment.requeue_signal is not None:
            signums.add(environment.requeue_signal)
        for signum in sorted(signums):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            # Lightning's teardown restores the handlers from before fit first; put back only
            # ours, or its stale SIGTERM handler would outlive the Trainer.
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def _stop_requested(self, trainer: L.Trainer) -> bool:
        requested = self._signal is not None
        if trainer.world_size > 1:
            # One rank may get the signal a step before another: decide together.
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        return requested

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        # Lightning registered its own SIGTERM handler just before; ours replaces it (it would
        # stop in the middle of a validation, where nothing can be saved consistently). A
        # SIGTERM that came before, while the loaders were being made, is carried over.
        self._install_handlers(trainer)
        if trainer.received_sigterm:
            self._signal = signal.SIGTERM
            trainer._signal_connector.received_sigterm = False
        resumed = trainer.ckpt_path is not None
        # last.ckpt already holds this step when the run resumed from it.
        same_file = resumed and Path(trainer.ckpt_path).resolve() == self.path.resolve()
        self._saved_at = pl_module.generator_steps if same_file else -1
        if resumed:
            # A batch-start checkpoint counts its next batch as ready; Lightning resets that
            # for the epoch's counter only, which would leave total_batch_idx (what
            # val_check_interval counts when check_val_every_n_epoch=null) one ahead.
            total = trainer.fit_loop.epoch_loop.batch_progress.total
            total.ready = total.completed
        if trainer.is_global_zero:
            # A kill during a save leaves its temporary file (atomic_write); last.ckpt is whole.
            for stale in self.dirpath.glob(f".{LAST_NAME}.*.tmp"):
                stale.unlink(missing_ok=True)

    def _stop(self, trainer: L.Trainer, step: int, at_train_end: bool = False) -> None:
        name = signal.Signals(self._signal).name if self._signal else "a signal on another rank"
        log.warning("received %s: saving %s at generator step %d and stopping", name, self.path,
                    step)  # fmt: skip
        self._save(trainer, step, at_train_end=at_train_end)
        raise Interrupted(
            f"stopped by {name} at generator step {step}; {self.path} holds that step: "
            f"continue with `python -m gan_lab.train resume={self.dirpath.parent}`",
            self._signal or signal.SIGTERM,
        )

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        step = pl_module.generator_steps
        if self._stop_requested(trainer):
            self._stop(trainer, step)
        if step > 0 and step % self.every == 0:
            self._save(trainer, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._signal is not None:  # came during the last step: stop before the final eval
            self._stop(trainer, pl_module.generator_steps, at_train_end=True)
        self._save(trainer, pl_module.generator_steps, at_train_end=True)

    def teardown(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        self._restore_handlers()


class BestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint keeping the checkpoint with the lowest validation FID.

    ``monitor="auto"`` takes the metrics callback's monitor (``val/fid_<first extractor>``);
    with no metrics configured it keeps nothing.
    """

    def __init__(self, monitor: str | None = "auto", **kwargs: Any) -> None:
        self._auto_monitor = monitor == "auto"
        kwargs.setdefault("mode", "min")
        kwargs.setdefault("save_top_k", 1)
        kwargs.setdefault("auto_insert_metric_name", False)
        # One best.ckpt per run: a resumed run replaces it rather than adding best-v1.ckpt.
        kwargs.setdefault("enable_version_counter", False)
        # Rank only after validations (a step budget can end an epoch with no validation).
        kwargs.setdefault("save_on_train_epoch_end", False)
        super().__init__(monitor=None if self._auto_monitor else monitor, **kwargs)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._auto_monitor:
            metric = next(
                (c.monitor for c in trainer.callbacks if getattr(c, "monitor", None)
                 and not isinstance(c, ModelCheckpoint)),
                None,
            )  # fmt: skip
            self.monitor = f"val/{metric}" if metric else None
            if self.monitor is None:
                self.save_top_k = 0  # nothing to rank by: keep no "best"
        super().setup(trainer, pl_module, stage)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Rank against the best.ckpt already on disk (its score never gets worse).

        A resumed run restores this callback's state from last.ckpt, which can predate a
        better best.ckpt written before the interruption.
        """
        super().on_train_start(trainer, pl_module)
        if self.monitor is None or self.save_top_k != 1 or self.dirpath is None:
            return
        path = Path(self.dirpath) / f"{self.filename}{self.FILE_EXTENSION}"
        score = self._score_on_disk(trainer, path)
        if score is None:
            return
        held = self.best_model_score
        if held is None or (score < held if self.mode == "min" else score > held):
            self.best_k_models = {str(path): score}
            self.best_model_path = self.kth_best_model_path = str(path)
            self.best_model_score = self.kth_value = score

    def _score_on_disk(self, trainer: L.Trainer, path: Path) -> torch.Tensor | None:
        """The score stored in ``path``; read on rank 0 and shared, so that every rank ranks
        alike (ranks on other nodes may not see the file)."""
        score = self._read_score(path) if trainer.is_global_zero else None
        return trainer.strategy.broadcast(score, src=0)

    def _read_score(self, path: Path) -> torch.Tensor | None:
        if not path.is_file():
            return None
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            state = ckpt["callbacks"][self.state_key]
        except Exception as err:  # a damaged best.ckpt is replaced by the next better one
            log.warning("cannot read the score of %s (%s); it will be replaced", path, err)
            return None
        if state.get("monitor") != self.monitor or state.get("best_model_score") is None:
            return None
        return torch.as_tensor(state["best_model_score"]).float()

    def rank_final_weights(self, trainer: L.Trainer) -> None:
        """Rank the final weights, validated by ``trainer.validate`` after fit (Lightning's
        ModelCheckpoint only saves while fitting, and a step budget can end mid-epoch)."""
        if self.monitor is None or self.save_top_k == 0:
            return
        if self._last_global_step_saved == trainer.global_step:
            return
        self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
        self._last_global_step_saved = trainer.global_step
