"""Metric names, protocol records and labels: the one place that builds them.

Shared by validation (``ValidationMetrics``), ``gan_lab.eval`` (``gan_lab.gan.evaluate``) and
``gan_lab.fid``, so the three name, record, label and refuse the same way:

- a metric on an extractor's outputs is ``<kind>_<extractor>`` (:func:`metric_name`), FID one
  number, KID and IS a ``_mean`` and a ``_std`` (:func:`result_names`, :func:`named_results`):
  ``fid_domain``, ``kid_inception_mean``, ``is_domain_std``; the ``prdc`` kind gives four,
  ``precision_<extractor>``, ``recall_``, ``density_`` and ``coverage_``; ``gan_lab.fid``, with
  one extractor, drops the suffix (``fid``, ``kid_mean``, ``precision``);
- a metric that cannot be computed is left out and recorded with why (:func:`plan_metrics`,
  :func:`no_logits_reason`);
- a protocol (:func:`protocol_record`, ``metrics_protocol`` in summary.json and eval.json)
  always reports the counts actually compared (never the count asked for), "sound" needs at
  least :data:`SOUND_NUM_SAMPLES` of them, and a set too small for a metric is a one-line
  UserError instead of a NaN, an exception deep in torchmetrics, or an Inception Score over
  empty splits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from gan_lab.errors import UserError

log = logging.getLogger(__name__)

# Fewer samples than this give biased FID/KID and noisy IS; such results are labelled "cheap".
SOUND_NUM_SAMPLES = 10_000
# FID needs a covariance (2 images at least); KID's unbiased MMD divides by m * (m - 1).
MIN_FID_IMAGES = 2
MIN_KID_IMAGES = 2
# The metric kinds, in the order they are computed, logged and recorded.
KINDS = ("fid", "kid", "is", "prdc")
PRDC_NAMES = ("precision", "recall", "density", "coverage")


def metric_name(kind: str, extractor: str | None = None) -> str:
    """``<kind>_<extractor>`` (``fid_domain``); just ``kind`` with no extractor (gan_lab.fid)."""
    return kind if extractor is None else f"{kind}_{extractor}"


def result_names(kind: str, extractor: str | None = None) -> tuple[str, ...]:
    """The result keys of a metric: FID's name, or the ``_mean`` and ``_std`` of KID and IS."""
    if kind == "prdc":
        return tuple(metric_name(part, extractor) for part in PRDC_NAMES)
    name = metric_name(kind, extractor)
    return (name,) if kind == "fid" else (f"{name}_mean", f"{name}_std")


def named_results(kind: str, extractor: str | None, value: Any) -> dict[str, float]:
    """A computed metric under its result names; ``value``: a number, (mean, std), or for
    ``prdc`` a dict keyed by :data:`PRDC_NAMES`."""
    if kind == "prdc":
        values = tuple(value[part] for part in PRDC_NAMES)
    else:
        values = (value,) if kind == "fid" else tuple(value)
    return dict(zip(result_names(kind, extractor), map(float, values), strict=True))


def no_logits_reason(option: str = "metrics.weights_path") -> str:
    """Why there is no Inception Score on Inception weights without a logits layer."""
    return (
        "the Inception weights have no logits layer (registry fallback); "
        f"set {option} to torch-fidelity's official file"
    )


def plan_metrics(
    extractor: str,
    has_logits: bool,
    *,
    fid: bool,
    kid: bool,
    inception_score: bool,
    prdc: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """The kinds to compute on ``extractor``'s outputs, and {metric name: why} for those
    asked for that cannot be (IS needs logits)."""
    kinds = [kind for kind, on in (("fid", fid), ("kid", kid)) if on]
    unavailable: dict[str, str] = {}
    if inception_score:
        if has_logits:
            kinds.append("is")
        else:
            unavailable[metric_name("is", extractor)] = no_logits_reason()
    if prdc:
        kinds.append("prdc")
    return kinds, unavailable


def monitor_name(extractors: Sequence[str], fid: bool) -> str | None:
    """What a sweeper minimizes and checkpoints rank by: FID of the first extractor."""
    return metric_name("fid", extractors[0]) if fid and extractors else None


def protocol_record(
    *,
    num_real: int | None,
    num_generated: int | None,
    requested: int,
    extractors: Mapping[str, Any],
    held_out: dict[str, Any],
    unavailable: dict[str, str],
    kid_subset_size: int | None = None,
    prdc_k: dict[str, int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``metrics_protocol``: what was compared, and how far to trust it.

    ``num_real``/``num_generated``: the images actually compared (None: none yet);
    ``requested``: ``metrics.num_samples``; ``extractors``: name -> extractor (recorded by
    identity); ``kid_subset_size``: the one asked for when KID is on (recorded as KID fits it
    to the sets), else None; ``prdc_k``: the neighbourhood sizes when precision/recall/density/
    coverage are on. An extractor with a ``resize`` (Inception: ``legacy`` or ``clean``) has it
    recorded under ``resize``. ``extra`` holds what belongs to one caller only: validation's
    ``monitor``, eval's latent ``seed``.
    """
    known = num_real is not None and num_generated is not None
    compared = min(num_real, num_generated) if known else None
    record = {
        "num_samples": compared,
        "num_real": num_real,
        "num_generated": num_generated,
        "num_samples_requested": requested,
        "label": "no images compared" if compared is None else label(compared),
        "extractors": {k: getattr(v, "identity", k) for k, v in extractors.items()},
        "held_out": held_out,
        **_resizes(extractors),
        **extra,
        "unavailable": unavailable,
    }
    if kid_subset_size is not None:
        sets = (num_real, num_generated) if known else (requested, requested)
        record["kid_subset_size"] = kid_subset(kid_subset_size, *sets)
    if prdc_k is not None:
        record["prdc_k"] = prdc_k
    return record


def _resizes(extractors: Mapping[str, Any]) -> dict[str, Any]:
    """``{"resize": {extractor: mode}}`` for the extractors that resize (Inception)."""
    modes = {
        k: v.resize for k, v in extractors.items() if isinstance(getattr(v, "resize", None), str)
    }
    return {"resize": modes} if modes else {}


def prdc_k_record(pr_k: int, dc_k: int) -> dict[str, int]:
    """The neighbourhood sizes as recorded in ``metrics_protocol["prdc_k"]``."""
    return {"precision_recall": pr_k, "density_coverage": dc_k}


def label(compared: int) -> str:
    """``sound`` for at least SOUND_NUM_SAMPLES compared images, else ``cheap (N < 10000)``."""
    if compared >= SOUND_NUM_SAMPLES:
        return "sound"
    return f"cheap ({compared} < {SOUND_NUM_SAMPLES})"


def kid_subset(requested: int, num_real: int, num_generated: int) -> int:
    """KID's subset size: the requested one, but never more than either set holds."""
    return max(MIN_KID_IMAGES, min(requested, num_real, num_generated))


def check_counts(
    num_real: int,
    num_generated: int,
    *,
    fid: bool,
    kid: bool,
    is_splits: int | None,
    real_what: str,
    hint: str,
    generated_what: str = "the generated set",
    prdc_k: tuple[int, int] | None = None,
) -> None:
    """UserError (one line) if either set is too small for a metric that is on.

    ``is_splits``: the Inception Score's split count (None: no IS), which needs at least one
    generated image per split; ``prdc_k``: (precision/recall k, density/coverage k) when those
    are on, which need more than k images in a set to find k neighbours.
    ``real_what``/``generated_what`` name the sets; ``hint`` says how to fix it.
    """
    needs: list[tuple[str, str, int, int]] = []  # (metric, set, has, needs)
    for on, metric, least in (
        (fid, "FID", MIN_FID_IMAGES),
        (kid, "KID", MIN_KID_IMAGES),
    ):
        if on:
            needs.append((metric, real_what, num_real, least))
            needs.append((metric, generated_what, num_generated, least))
    if is_splits:
        needs.append((f"IS over {is_splits} splits", generated_what, num_generated, is_splits))
    if prdc_k is not None:
        pr_k, dc_k = prdc_k
        needs.append((f"precision/recall/density/coverage (k={max(prdc_k)})", real_what,
                      num_real, max(prdc_k) + 1))  # fmt: skip
        needs.append((f"recall (k={pr_k})", generated_what, num_generated, pr_k + 1))
    for metric, what, has, least in needs:
        if has < least:
            raise UserError(
                f"{what} has {has} image(s), too few for {metric} (at least {least}); {hint}"
            )


def warn_if_fewer(
    requested: int, available: int, what: str, asked: str = "metrics.num_samples"
) -> None:
    """Warn that fewer images than asked for will be compared (callers warn once a run)."""
    if available < requested:
        log.warning(
            "%s=%d but %s has only %d images: comparing %d (recorded as such; label %s)",
            asked, requested, what, available, available, label(available),
        )  # fmt: skip
