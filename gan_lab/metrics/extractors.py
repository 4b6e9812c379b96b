"""Feature extractors for FID / KID / IS: torch-fidelity's Inception and the domain classifiers.

Each extractor maps a batch of [0, 1] float images (any channel count the data has) to
``{"features": [N, D], "logits": [N, K]}`` in one forward pass; ``logits`` is absent when the
network has no classification layer (converted registry Inception weights). The metrics in
:mod:`gan_lab.metrics.validation` are torchmetrics objects fed these tensors, so a batch goes
through each network once however many metrics read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from gan_lab.errors import UserError
from gan_lab.metrics.digest import state_dict_sha256


class InceptionExtractor(nn.Module):
    """torchmetrics' NoTrainInceptionV3 (torch-fidelity's FID Inception) on resolved weights.

    Input is quantised to uint8 the way torchmetrics does with ``normalize=True``, and resized
    by torch-fidelity's TF1-compatible bilinear resize (``antialias=False``), so the features
    equal those of ``FrechetInceptionDistance(feature=2048, antialias=False)``.
    """

    def __init__(self, weights: Any) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.weights = weights
        self.has_logits = bool(weights.has_logits)
        outputs = ["2048", "logits_unbiased"] if self.has_logits else ["2048"]
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=outputs,
            feature_extractor_weights_path=str(weights.path),
            antialias=False,
        )
        # channels_last: 1.55x faster on this CPU (7.1 -> 11.0 images/s), features within 6e-6.
        self.net = self.net.to(memory_format=torch.channels_last)
        self.name = "inception"
        self.num_features = 2048
        self.num_classes = 1008
        # The sha256 of the weights file itself (checked against its pinned or recorded hash
        # when it was resolved): part of every cache key built on these features.
        self.weights_sha256 = weights.sha256
        self.identity = f"inception-{weights.sha256[:16]}"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.size(1) == 1:
            images = images.expand(-1, 3, -1, -1)
        # NoTrainInceptionV3.forward returns only its first output; its torch-fidelity forward
        # returns all of them, so features and logits come from one pass.
        out = self.net._torch_fidelity_forward((images * 255).byte())
        n = images.size(0)
        result = {"features": out[0].reshape(n, -1)}
        if self.has_logits:
            result["logits"] = out[1].reshape(n, -1)
        return result


class DomainExtractor(nn.Module):
    """A dataset's own classifier: 128-d penultimate features and class logits.

    Its identity names the architecture version and training-data digest, and the sha256 of
    the classifier's weights themselves (hashed once, here): a retrained classifier, or one
    trained on another machine, never reuses statistics cached with another one.
    """

    def __init__(self, classifier: nn.Module, dataset: str, record: dict[str, Any]) -> None:
        super().__init__()
        self.net = classifier.eval()
        self.has_logits = True
        self.name = "domain"
        self.num_features = record["feature_dim"]
        self.num_classes = record["num_classes"]
        self.record = record
        self.weights_sha256 = state_dict_sha256(classifier)
        self.identity = (
            f"domain-{dataset}-v{record['arch_version']}-{record['data_digest'][:12]}"
            f"-w{self.weights_sha256[:12]}"
        )

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.net.features(images)
        return {"features": features, "logits": self.net.classify(features)}


def resolve_extractors(names: str | Sequence[str], datamodule: Any = None) -> list[str]:
    """The extractor names to build. ``auto``: ``domain`` for a dataset with a domain
    classifier (class labels: mnist, fashion_mnist, cifar10), ``inception`` otherwise (an image
    folder, LSUN): the fast, meaningful one where it exists, one that works everywhere else."""
    if isinstance(names, str):
        if names != "auto":
            return [names]
        from gan_lab.metrics.domain import MIN_ACCURACY

        has_classifier = (
            datamodule is not None and getattr(datamodule, "name", None) in MIN_ACCURACY
        )
        return ["domain" if has_classifier else "inception"]
    return list(names)


def build_extractor(
    name: str, datamodule: Any = None, weights_path: str | None = None
) -> InceptionExtractor | DomainExtractor:
    """``inception`` or ``domain`` (the datamodule's dataset classifier, trained if missing)."""
    if name == "inception":
        from gan_lab.metrics.inception_weights import resolve_inception_weights

        return InceptionExtractor(resolve_inception_weights(weights_path))
    if name == "domain":
        from gan_lab.metrics.domain import ensure_classifier

        if datamodule is None:
            raise UserError("the domain extractor needs a dataset (data=mnist, ...)")
        classifier, record = ensure_classifier(datamodule)
        return DomainExtractor(classifier, datamodule.name, record)
    raise UserError(f"unknown feature extractor {name!r}; choose inception or domain")
