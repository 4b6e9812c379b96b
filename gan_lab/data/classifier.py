"""What a labelled dataset tells the metrics about its domain classifier.

The metrics (``gan_lab.metrics.extractors.domain``) train one small classifier per dataset
and read these settings off the datamodule they are given (``datamodule.domain_classifier``),
so they name no dataset themselves; ``None`` (the base class's default) means the dataset has
no domain classifier (no class labels) and ``metrics.extractors=auto`` picks Inception.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DomainClassifierSpec:
    """The training recipe's per-dataset settings, and the accuracy its features need.

    ``min_accuracy``: held-out top-1 accuracy below which the classifier is refused (its
    features would not make a trustworthy metric). ``epochs``: training epochs (enough for
    ``min_accuracy`` with margin). ``hflip``: random horizontal flips as augmentation (for
    photos; digits and clothes are not mirror-symmetric classes).
    """

    min_accuracy: float
    epochs: int
    hflip: bool = False
