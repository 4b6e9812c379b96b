"""The ``metrics`` config group's ``_target_``: the extractors and the validation callback."""

from __future__ import annotations

from typing import Any

from gan_lab.metrics.extractors import build_extractor, resolve_extractors
from gan_lab.metrics.prdc import DC_K, PR_K
from gan_lab.metrics.validation import ValidationMetrics


def build_validation_metrics(
    datamodule: Any,
    num_samples: int = 2000,
    extractors: str | list[str] | tuple[str, ...] = "auto",
    fid: bool = True,
    kid: bool = False,
    inception_score: bool = True,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    weights_path: str | None = None,
    cache_real_stats: bool = True,
    prdc: bool = False,
    pr_k: int = PR_K,
    dc_k: int = DC_K,
    knn_memory_mb: float = 1024,
    knn_dtype: str = "float64",
    resize: str = "legacy",
) -> ValidationMetrics | None:
    """The validation metrics of ``conf/metrics/``: one extractor pass feeds all metrics.

    ``extractors``: names, or ``auto`` (see :func:`~gan_lab.metrics.extractors.resolve_extractors`).
    """
    names = resolve_extractors(extractors, datamodule)
    if not (fid or kid or inception_score or prdc) or not names:
        return None
    built = {
        name: build_extractor(
            name, datamodule=datamodule, weights_path=weights_path, resize=resize
        )  # fmt: skip
        for name in names
    }
    stats_dir = datamodule.data_dir / "cache" / "stats" if cache_real_stats else None
    return ValidationMetrics(
        built,
        num_samples=num_samples,
        fid=fid,
        kid=kid,
        inception_score=inception_score,
        kid_subset_size=kid_subset_size,
        is_splits=is_splits,
        stats_dir=stats_dir,
        prdc=prdc,
        pr_k=pr_k,
        dc_k=dc_k,
        knn_memory_mb=knn_memory_mb,
        knn_dtype=knn_dtype,
    )
