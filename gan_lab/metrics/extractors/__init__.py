"""Feature extractors for FID / KID / IS: torch-fidelity's Inception and the domain classifiers.

Each extractor maps a batch of [0, 1] float images (any channel count the data has) to
``{"features": [N, D], "logits": [N, K]}`` in one forward pass; ``logits`` is absent when the
network has no classification layer (converted registry Inception weights). The metrics in
:mod:`gan_lab.metrics.validation` are torchmetrics objects fed these tensors, so a batch goes
through each network once however many metrics read it.

``inception`` (:mod:`.inception`, weights from :mod:`.inception_weights`) works on any images;
``domain`` (:mod:`.domain`) is a small classifier trained on the dataset itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gan_lab.errors import UserError
from gan_lab.metrics.extractors.domain import DomainExtractor, classifier_spec, ensure_classifier
from gan_lab.metrics.extractors.inception import InceptionExtractor
from gan_lab.metrics.extractors.inception_weights import resolve_inception_weights

__all__ = ["DomainExtractor", "InceptionExtractor", "build_extractor", "resolve_extractors"]


def resolve_extractors(names: str | Sequence[str], datamodule: Any = None) -> list[str]:
    """The extractor names to build. ``auto``: ``domain`` for a dataset whose datamodule has
    ``domain_classifier`` settings (labelled datasets such as MNIST), ``inception`` otherwise
    (an image folder, LSUN): the fast, meaningful one where it exists, one that works
    everywhere else."""
    if isinstance(names, str):
        if names != "auto":
            return [names]
        return ["domain" if classifier_spec(datamodule) is not None else "inception"]
    return list(names)


def build_extractor(
    name: str, datamodule: Any = None, weights_path: str | None = None, resize: str = "legacy"
) -> InceptionExtractor | DomainExtractor:
    """``inception`` or ``domain`` (the datamodule's dataset classifier, trained if missing).

    ``resize``: how Inception brings images to 299x299, ``legacy`` (torch-fidelity's TF1
    bilinear, as published FIDs) or ``clean`` (clean-fid's PIL bicubic); the domain classifier
    reads images at the dataset's own size and ignores it.
    """
    if name == "inception":
        return InceptionExtractor(resolve_inception_weights(weights_path), resize=resize)
    if name == "domain":
        if datamodule is None:
            raise UserError("the domain extractor needs a dataset (data=<name>)")
        classifier, record = ensure_classifier(datamodule)
        return DomainExtractor(classifier, datamodule.name, record)
    raise UserError(f"unknown feature extractor {name!r}; choose inception or domain")
