"""Evaluation: feature extractors (Inception, domain classifiers), torchmetrics FID/KID/IS."""

from gan_lab.metrics.validation import ValidationMetrics, build_validation_metrics

__all__ = ["ValidationMetrics", "build_validation_metrics"]
