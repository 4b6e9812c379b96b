"""Whole-set metrics: extract features of two image sets, then torchmetrics FID / KID / IS.

The batch counterpart of :class:`gan_lab.metrics.validation.ValidationMetrics`, for the
``gan_lab.fid`` and ``gan_lab.eval`` commands and notebooks. The same torchmetrics classes
compute the numbers, fed precomputed features through :class:`Passthrough`.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from gan_lab.io import atomic_write
from gan_lab.metrics.digest import extractor_weights_sha256
from gan_lab.metrics.prdc import DC_K, PR_K, knn_radii, prdc
from gan_lab.metrics.progress import Stage
from gan_lab.metrics.protocol import kid_subset

log = logging.getLogger(__name__)


class Passthrough(nn.Module):
    """Hands precomputed features to a torchmetrics metric as its "feature extractor"."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def to_unit_images(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (float) or [0, 255] (uint8) images -> float32 [0, 1]."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return ((x.float() + 1.0) / 2.0).clamp_(0.0, 1.0)


@torch.no_grad()
def extract(
    extractor: nn.Module,
    batches: Iterator[torch.Tensor] | list[torch.Tensor],
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``extractor`` over batches of images (uint8, or float in [-1, 1]); outputs in fp32.

    ``progress`` is called with each batch's size (a :class:`~gan_lab.metrics.progress.Stage`).
    """
    outs: dict[str, list[torch.Tensor]] = {}
    for batch in batches:
        result = extractor(to_unit_images(batch.to(device)))
        for key, value in result.items():
            outs.setdefault(key, []).append(value.float().cpu())
        if progress is not None:
            progress(len(batch))
    return {k: torch.cat(v) for k, v in outs.items()}


def in_batches(images: torch.Tensor, batch_size: int = 250) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), batch_size):
        yield images[start : start + batch_size]


def fid_score(real: torch.Tensor, fake: torch.Tensor) -> float:
    """torchmetrics FID between two feature sets [N, D] (computed in float64)."""
    metric = FrechetInceptionDistance(Passthrough(real.size(1)))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kid_score(
    real: torch.Tensor, fake: torch.Tensor, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """torchmetrics KID (mean, std over 100 subsets) between two feature sets; the subset
    size is ``subset_size`` or, if smaller, the size of either set."""
    subset = kid_subset(subset_size, len(real), len(fake))
    metric = KernelInceptionDistance(Passthrough(real.size(1)), subset_size=subset)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    # KID draws its subsets from the global generator: seeded here, the caller's restored.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def make_inception_score(num_classes: int, splits: int = 10) -> InceptionScore:
    """torchmetrics InceptionScore over precomputed logits, without its memory notice (the
    logits it keeps are N x K floats, small next to the images they came from)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Metric `InceptionScore` will save all")
        return InceptionScore(Passthrough(num_classes), splits=splits)


def inception_score(logits: torch.Tensor, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """torchmetrics Inception Score (mean, std over ``splits``) of class logits [N, K]."""
    metric = make_inception_score(logits.size(1), splits)
    metric.update(logits)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # IS shuffles before splitting: make it reproducible
    try:
        mean, std = metric.compute()
    finally:
        torch.random.set_rng_state(state)
    return float(mean), float(std)


def timed_extract(
    extractor: nn.Module,
    images: torch.Tensor,
    what: str,
    batch_size: int = 250,
    device: torch.device | str = "cpu",
    bar: bool | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`extract` over a uint8 tensor, with a progress bar (``bar``: see
    :class:`~gan_lab.metrics.progress.Stage`) and a log line of images/s."""
    with Stage(what, len(images), bar=bar) as stage:
        return extract(extractor, in_batches(images, batch_size), device, progress=stage)


def real_stats_path(
    extractor: nn.Module, real: torch.Tensor, stats_dir: Path | None, name: str
) -> Path | None:
    """Where the extractor's outputs on uint8 ``real`` images are cached (None: no cache).

    The key is the extractor's identity, the full sha256 of its weights (the weights file's,
    or its state dict's) and a sha256 of the images themselves, so any change of data or
    weights misses and a hit is exact.
    """
    if stats_dir is None:
        return None
    content = hashlib.sha256(real.contiguous().numpy().tobytes()).hexdigest()
    weights = extractor_weights_sha256(extractor)
    ident = f"{extractor.identity}|weights={weights}|{tuple(real.shape)}|{content}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:20]
    return Path(stats_dir) / f"{name}-{len(real)}-{digest}.pt"


def _load_cached(path: Path | None, what: str) -> dict[str, torch.Tensor] | None:
    """A cache entry's tensors, or None when absent or damaged (never trusted then)."""
    if path is None or not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        log.warning("%s %s unreadable (%s); recomputing", what, path, err)
        return None


def _save_cached(path: Path | None, tensors: dict[str, torch.Tensor], what: str) -> None:
    if path is None:
        return
    try:
        atomic_write(path, lambda f: torch.save(tensors, f))
    except OSError as err:  # a read-only data_dir: the statistics are just not kept
        log.warning("cannot cache %s in %s (%s); computing them each run", what, path.parent,
                    err)  # fmt: skip


def cached_outputs(
    extractor: nn.Module,
    real: torch.Tensor,
    stats_dir: Path | None,
    name: str,
    device: torch.device | str = "cpu",
    bar: bool | None = None,
) -> dict[str, torch.Tensor]:
    """``extract`` over uint8 ``real`` images, cached in ``stats_dir`` (None: no cache) under
    :func:`real_stats_path`. A damaged entry is recomputed, never trusted."""
    path = real_stats_path(extractor, real, stats_dir, name)
    result = _load_cached(path, "real statistics")
    if result is None:
        result = timed_extract(extractor, real, f"real images ({name})", device=device, bar=bar)
        _save_cached(path, result, "real statistics")
    return {k: v.to(device) for k, v in result.items()}


def cached_real_radii(
    features: torch.Tensor,
    stats_path: Path | None,
    ks: tuple[int, ...],
    memory_mb: float,
    dtype: str,
    bar: bool | None = None,
) -> dict[int, torch.Tensor]:
    """The real features' k-NN radii (:func:`~gan_lab.metrics.prdc.knn_radii`) at each k,
    cached beside the features they come from (``stats_path``, None: no cache), so they share
    its key: extractor weights and data digest."""
    ks = tuple(sorted(set(ks)))
    path = None
    if stats_path is not None:
        path = stats_path.with_name(f"{stats_path.stem}-knn-k{'-'.join(map(str, ks))}-{dtype}.pt")
    cached = _load_cached(path, "real k-NN radii")
    if cached is not None and all(f"k{k}" in cached for k in ks):
        return {k: cached[f"k{k}"] for k in ks}
    with Stage("real k-NN radii", len(features), "rows", bar=bar) as stage:
        radii = knn_radii(features.cpu(), ks, memory_mb, dtype, progress=stage)
    _save_cached(path, {f"k{k}": v for k, v in radii.items()}, "real k-NN radii")
    return radii


def prdc_score(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    stats_path: Path | None,
    pr_k: int = PR_K,
    dc_k: int = DC_K,
    memory_mb: float = 1024,
    dtype: str = "float64",
    bar: bool | None = None,
) -> dict[str, float]:
    """:func:`~gan_lab.metrics.prdc.prdc` of two feature sets, the real radii from the stats
    cache (``stats_path``: the real features' cache file, None: computed each time)."""
    radii = cached_real_radii(real, stats_path, (pr_k, dc_k), memory_mb, dtype, bar=bar)
    with Stage("sample k-NN (precision/recall/density/coverage)", 2 * len(fake), "rows",
               bar=bar) as stage:  # fmt: skip
        return prdc(real.cpu(), fake.cpu(), pr_k, dc_k, radii, memory_mb, dtype, progress=stage)
