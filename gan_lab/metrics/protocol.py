"""How many images a metric really compared, and whether that is enough to trust it.

Shared by validation (``ValidationMetrics``), ``gan_lab.eval`` and ``gan_lab.fid``, so the
three record, label and refuse sample counts the same way: a protocol always reports the
counts actually compared (never the count asked for), "sound" needs at least
:data:`SOUND_NUM_SAMPLES` of them, and a set too small for a metric is a one-line UserError
instead of a NaN, an exception deep in torchmetrics, or an Inception Score over empty splits.
"""

from __future__ import annotations

import logging

from gan_lab.errors import UserError

log = logging.getLogger(__name__)

# Fewer samples than this give biased FID/KID and noisy IS; such results are labelled "cheap".
SOUND_NUM_SAMPLES = 10_000
# FID needs a covariance (2 images at least); KID's unbiased MMD divides by m * (m - 1).
MIN_FID_IMAGES = 2
MIN_KID_IMAGES = 2


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
) -> None:
    """UserError (one line) if either set is too small for a metric that is on.

    ``is_splits``: the Inception Score's split count (None: no IS), which needs at least one
    generated image per split. ``real_what``/``generated_what`` name the sets; ``hint`` says
    how to fix it.
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
