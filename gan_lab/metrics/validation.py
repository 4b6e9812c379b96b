"""Validation-epoch metrics: torchmetrics FID / KID / IS on generated vs held-out real images.

A Callback rather than a part of GANModule, so the feature networks are neither in the
module's checkpoints nor in its optimizers.

Real statistics are computed once per run, from ``datamodule.val_images()`` (the first
``num_samples`` images of the held-out split), and cached on disk under a key made of the
extractor's identity (classifier version and training-data digest), the sha256 of its weights
and a sha256 of the real images themselves: later runs and sweep jobs load them instead of
running the feature network over real images again, and any change of data or weights misses.
Under DDP only rank 0 holds the real features, so torchmetrics' cross-rank sum gives exactly
one copy of them.
Generated images come from ``GANModule.validation_step``, one per held-out image, split over
ranks by Lightning's sampler; ``compute()`` runs on every rank (or DDP would hang).

Precision/recall/density/coverage (:mod:`gan_lab.metrics.prdc`) are set metrics over all the
generated features, not running sums: torchmetrics' ``CatMetric`` gathers them from every rank,
rank 0 (which holds the real features and their cached k-NN radii) computes the four numbers
and broadcasts them, so every rank logs the same values without repeating the k-NN work.

Names in the logger and ``summary.json``: ``fid_<extractor>``, ``kid_<extractor>_mean/_std``,
``is_<extractor>_mean/_std``, e.g. ``fid_domain`` or ``is_inception_mean``, and with
``prdc=True`` ``precision_<extractor>``, ``recall_``, ``density_`` and ``coverage_``; they,
the protocol record and the text of an unavailable metric come from
:mod:`gan_lab.metrics.protocol`, as ``gan_lab.eval``'s do.

``protocol()`` (``summary.json``'s ``metrics_protocol``) records the numbers of real and
generated images actually compared, which are fewer than ``num_samples`` when the held-out set
is smaller (a warning says so once), and labels the run "sound" only when at least
:data:`~gan_lab.metrics.protocol.SOUND_NUM_SAMPLES` were. A held-out set too small for a metric
is a one-line UserError when the Trainer sets up, before any training step.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.aggregation import CatMetric, SumMetric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from gan_lab.metrics.compute import (
    Passthrough,
    cached_outputs,
    make_inception_score,
    prdc_score,
    real_stats_path,
    to_unit_images,
)
from gan_lab.metrics.prdc import DC_K, PR_K
from gan_lab.metrics.protocol import (
    SOUND_NUM_SAMPLES,
    check_counts,
    kid_subset,
    metric_name,
    monitor_name,
    named_results,
    plan_metrics,
    prdc_k_record,
    protocol_record,
    warn_if_fewer,
)

__all__ = ["SOUND_NUM_SAMPLES", "ValidationMetrics"]

log = logging.getLogger(__name__)


class ValidationMetrics(L.Callback):
    """FID / KID / IS per feature extractor at each validation epoch; see the module doc."""

    def __init__(
        self,
        extractors: dict[str, nn.Module],
        num_samples: int,
        fid: bool = True,
        kid: bool = False,
        inception_score: bool = True,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        stats_dir: Path | None = None,
        prdc: bool = False,
        pr_k: int = PR_K,
        dc_k: int = DC_K,
        knn_memory_mb: float = 1024,
        knn_dtype: str = "float64",
    ) -> None:
        self.extractors = extractors
        self.monitor = monitor_name(list(extractors), fid)
        self.num_samples = num_samples  # requested; the held-out set may hold fewer
        self.kid_subset_size = kid_subset_size
        self.stats_dir = stats_dir
        self.prdc_options = {"pr_k": pr_k, "dc_k": dc_k, "memory_mb": knn_memory_mb,
                             "dtype": knn_dtype}  # fmt: skip
        # extractor name -> (real features, their stats-cache path), on global rank 0.
        self.prdc_real: dict[str, tuple[torch.Tensor, Path | None]] = {}
        self.unavailable: dict[str, str] = {}
        # (extractor name, metric name, kind: "fid", "kid", "is" or "prdc", metric); IS reads
        # logits, the others features.
        self.metrics: list[tuple[str, str, str, Metric]] = []
        for name, ex in extractors.items():
            kinds, unavailable = plan_metrics(
                name, ex.has_logits, fid=fid, kid=kid, inception_score=inception_score, prdc=prdc
            )
            for metric, why in unavailable.items():
                log.warning("%s not computed: %s", metric, why)
            self.unavailable.update(unavailable)
            for kind in kinds:
                self.metrics.append((name, metric_name(kind, name), kind,
                                     self._make(kind, ex, is_splits)))  # fmt: skip
        kinds = {kind for _, _, kind, _ in self.metrics}
        self.checks = {"fid": "fid" in kinds, "kid": "kid" in kinds,
                       "is_splits": is_splits if "is" in kinds else None,
                       "prdc_k": (pr_k, dc_k) if "prdc" in kinds else None}  # fmt: skip
        # Generated images scored at this validation, summed over ranks by torchmetrics.
        self.generated = SumMetric()
        self.num_real: int | None = None  # held-out images compared (known at setup)
        self.counts: dict[str, int] = {}  # real/generated counts of the last validation
        self.held_out: dict[str, Any] = {}  # the datamodule's held_out_info(): split, digest
        self._warned = False
        self.real_ready = False
        self.last_results: dict[str, float] = {}
        self.history: list[dict[str, float]] = []  # one entry per validation: step + metrics

    def _make(self, kind: str, extractor: nn.Module, is_splits: int) -> Metric:
        """The torchmetrics object of a metric kind, fed the extractor's outputs."""
        if kind == "fid":
            return FrechetInceptionDistance(
                Passthrough(extractor.num_features), reset_real_features=False
            )
        if kind == "kid":
            # The subset size is set again from the real counts (setup, and each compute).
            subset = kid_subset(self.kid_subset_size, self.num_samples, self.num_samples)
            return KernelInceptionDistance(
                Passthrough(extractor.num_features), subset_size=subset, reset_real_features=False
            )
        if kind == "prdc":  # the generated features, gathered from all ranks at compute()
            return CatMetric(nan_strategy="disable")
        return make_inception_score(extractor.num_classes, is_splits)

    # ------------------------------------------------------------------ protocol
    def protocol(self) -> dict[str, Any]:
        """What was compared: counts actually used, their label, extractors, held-out set."""
        # The last validation's counts; before any, the counts the held-out set will give.
        return protocol_record(
            num_real=self.counts.get("num_real", self.num_real),
            num_generated=self.counts.get("num_generated", self.num_real),
            requested=self.num_samples,
            extractors=self.extractors,
            held_out=self.held_out,
            unavailable=self.unavailable,
            kid_subset_size=self.kid_subset_size if self.checks["kid"] else None,
            prdc_k=prdc_k_record(*self.checks["prdc_k"]) if self.checks["prdc_k"] else None,
            monitor=self.monitor,
        )

    def _set_counts(self, num_real: int, num_generated: int) -> None:
        """Check the counts against every metric and fit KID's subset size to them."""
        check_counts(
            num_real,
            num_generated,
            **self.checks,
            real_what="the held-out set used for validation",
            hint="use more held-out images (metrics.num_samples; for a folder, more images or "
            "a larger data.held_out_fraction) or turn that metric off",
        )
        for _, _, kind, metric in self.metrics:
            if kind == "kid":
                metric.subset_size = kid_subset(self.kid_subset_size, num_real, num_generated)

    # ------------------------------------------------------------------ real statistics
    def real_outputs(self, name: str, real: torch.Tensor, device: torch.device) -> dict:
        """The extractor's outputs on the real images, from the stats cache when present."""
        return cached_outputs(self.extractors[name], real, self.stats_dir, name, device)

    def _load_real(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            real = trainer.datamodule.val_images()
            for name in self.extractors:
                outputs = self.real_outputs(name, real, pl_module.device)
                for ex_name, _, kind, metric in self.metrics:
                    if ex_name != name or kind == "is":
                        continue
                    if kind == "prdc":
                        path = real_stats_path(self.extractors[name], real, self.stats_dir, name)
                        self.prdc_real[name] = (outputs["features"].cpu(), path)
                    else:
                        metric.update(outputs["features"].to(pl_module.device), real=True)
        self.real_ready = True

    # ------------------------------------------------------------------ Lightning hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for extractor in self.extractors.values():
            extractor.to(pl_module.device)
        for *_, metric in self.metrics:
            metric.to(pl_module.device)
        self.generated.to(pl_module.device)
        # The datamodule is set up before callbacks, on every rank: check the counts here, so
        # a too-small held-out set stops the run before its first step, on all ranks alike.
        datamodule = trainer.datamodule
        self.num_real = len(datamodule.val_images())
        if not self._warned:
            warn_if_fewer(self.num_samples, self.num_real, "the held-out set")
            self._warned = True
        self._set_counts(self.num_real, self.num_real)  # one generated image per real one
        if hasattr(datamodule, "held_out_info"):
            self.held_out = datamodule.held_out_info()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and not self.real_ready:
            with torch.autocast(device_type=pl_module.device.type, enabled=False):
                self._load_real(trainer, pl_module)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking:
            return
        # Features in fp32 whatever the training precision: bf16 features would shift FID.
        with torch.autocast(device_type=pl_module.device.type, enabled=False):
            fake = to_unit_images(outputs)
            self.generated.update(float(len(fake)))
            for name, extractor in self.extractors.items():
                out = extractor(fake)
                for ex_name, _, kind, metric in self.metrics:
                    if ex_name != name:
                        continue
                    if kind == "is":
                        metric.update(out["logits"].float())
                    elif kind == "prdc":
                        metric.update(out["features"].float())
                    else:
                        metric.update(out["features"].float(), real=False)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        results: dict[str, float] = {}
        # compute() syncs states across ranks; every rank must call it (or DDP hangs).
        num_generated = int(self.generated.compute())
        self.generated.reset()
        assert self.num_real is not None
        # E.g. trainer.limit_val_batches generates fewer images than there are real ones.
        self._set_counts(self.num_real, num_generated)
        self.counts = {"num_real": self.num_real, "num_generated": num_generated}
        for name, _, kind, metric in self.metrics:
            value = metric.compute()  # KID, IS: (mean, std); prdc: all ranks' features
            if kind == "prdc":
                value = self._prdc(trainer, name, value)
            results.update(named_results(kind, name, value))
            metric.reset()  # FID/KID keep their real features (reset_real_features=False)
        for key, value in results.items():
            # Every rank holds the same value (compute() synced the states); sync_dist averages
            # equal numbers, and keeps Lightning from warning about epoch-level DDP logging.
            pl_module.log(f"val/{key}", value, sync_dist=True)
        self.last_results = results
        step = pl_module.generator_steps
        self.history.append({"step": step, **results})
        log.info("step %d: %s", step, {k: round(v, 4) for k, v in results.items()})

    def _prdc(self, trainer: L.Trainer, name: str, fake: torch.Tensor) -> dict[str, float]:
        """The four set metrics, computed on rank 0 and broadcast to every rank."""
        value = None
        if trainer.is_global_zero:
            real, path = self.prdc_real[name]
            value = prdc_score(real, fake.float().cpu(), stats_path=path, bar=False,
                               **self.prdc_options)  # fmt: skip
        return trainer.strategy.broadcast(value, src=0)

    # ------------------------------------------------------------------ checkpoint state
    # The history and latest results travel in checkpoints, so that a resumed run's
    # summary.json holds every validation of the run. (Metric states are reset every epoch
    # and the real features are cached on disk: neither needs saving.)
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "last_results": self.last_results, "counts": self.counts}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(entry) for entry in state_dict.get("history", [])]
        self.last_results = dict(state_dict.get("last_results", {}))
        self.counts = dict(state_dict.get("counts", {}))
