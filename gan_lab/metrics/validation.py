"""Validation-epoch metrics: torchmetrics FID/KID on generated vs held-out real images.

A Callback rather than a part of GANModule, so that the Inception network is neither in the
module's state_dict (checkpoints stay small) nor in its optimizers. The module's
``validation_step`` returns generated images for each real batch; this callback feeds both to
the metrics. Real features are kept across validation epochs (``reset_real_features=False``),
so real images are passed through the feature extractor once per run.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torchmetrics import Metric

log = logging.getLogger(__name__)

# Protocols: fewer samples than this give biased FID/KID; results are labelled "cheap".
SOUND_NUM_SAMPLES = 10_000


def to_metric_images(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images, 1 or 3 channels -> [0, 1] float32 RGB, as torchmetrics expects."""
    x = ((x.float() + 1.0) / 2.0).clamp_(0.0, 1.0)
    return x.expand(-1, 3, -1, -1) if x.size(1) == 1 else x


class ValidationMetrics(L.Callback):
    """Feeds real and generated images of each validation epoch to torchmetrics metrics.

    ``metrics`` maps a name to a metric whose ``update(images, real=bool)`` takes [0, 1] RGB
    floats (FID, KID). Results are logged as ``val/<name>`` and kept in ``last_results``.
    """

    def __init__(self, metrics: dict[str, Metric], num_samples: int, extractor: str) -> None:
        self.metrics = metrics
        self.num_samples = num_samples
        self.extractor = extractor
        self.real_done = False
        self.last_step = -1
        self.last_results: dict[str, float] = {}

    def protocol(self) -> dict[str, Any]:
        sound = self.num_samples >= SOUND_NUM_SAMPLES
        return {
            "num_samples": self.num_samples,
            "extractor": self.extractor,
            "label": "sound" if sound else f"cheap ({self.num_samples} < {SOUND_NUM_SAMPLES})",
        }

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for metric in self.metrics.values():
            metric.to(pl_module.device)

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
        # Metrics in fp32 whatever the training precision: bf16 features would shift FID.
        with torch.autocast(device_type=pl_module.device.type, enabled=False):
            real = None if self.real_done else to_metric_images(batch)
            fake = to_metric_images(outputs)
            for metric in self.metrics.values():
                if real is not None:
                    metric.update(real, real=True)
                metric.update(fake, real=False)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.real_done = True
        results = {}
        # compute() syncs states across ranks; every rank must call it (or DDP hangs).
        for name, metric in self.metrics.items():
            value = metric.compute()
            if isinstance(value, tuple):  # KID: (mean, std)
                results[f"{name}_mean"], results[f"{name}_std"] = (float(v) for v in value)
            else:
                results[name] = float(value)
            metric.reset()  # keeps real features (reset_real_features=False)
        for key, value in results.items():
            pl_module.log(f"val/{key}", value, sync_dist=False)
        self.last_results = results
        self.last_step = pl_module.generator_steps
        log.info("step %d: %s", self.last_step, results)


def build_validation_metrics(
    num_samples: int = 1000,
    fid: bool = True,
    kid: bool = False,
    weights_path: str | None = None,
) -> ValidationMetrics | None:
    """FID (and KID) on Inception pool3 features, weights resolved offline-first."""
    from gan_lab.metrics.inception_weights import make_fid, make_kid, resolve_inception_weights

    if not (fid or kid):
        return None
    weights = resolve_inception_weights(weights_path)
    metrics: dict[str, Metric] = {}
    if fid:
        metrics["fid"] = make_fid(weights, reset_real_features=False, normalize=True)
    if kid:
        subset = min(1000, num_samples // 2)
        metrics["kid"] = make_kid(
            weights, reset_real_features=False, normalize=True, subset_size=subset
        )
    return ValidationMetrics(metrics, num_samples=num_samples, extractor="inception")
