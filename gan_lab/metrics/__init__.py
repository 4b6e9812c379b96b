"""Evaluation: Inception weights resolution, torchmetrics FID/KID, validation-epoch callback."""

from gan_lab.metrics.validation import ValidationMetrics, build_validation_metrics

__all__ = ["ValidationMetrics", "build_validation_metrics"]
