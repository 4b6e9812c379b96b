"""torch-fidelity's FID Inception as a feature extractor: pool3 features and, with the official
weights, the logits of the Inception Score, from one forward pass."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


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
