"""Evaluation: feature extractors (Inception, domain classifiers), torchmetrics FID/KID/IS,
and precision/recall/density/coverage."""

from gan_lab.metrics.build import build_validation_metrics
from gan_lab.metrics.validation import ValidationMetrics

__all__ = ["ValidationMetrics", "build_validation_metrics"]
