"""torch-fidelity's FID Inception as a feature extractor: pool3 features and, with the official
weights, the logits of the Inception Score, from one forward pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from gan_lab.errors import UserError

RESIZE_MODES = ("legacy", "clean")

# torch-fidelity's InceptionV3 modules from the first conv to the 2048-d average pool, in the
# order its forward runs them (the intermediate 64/192/768 taps are not needed here).
# fmt: off
_LAYERS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1",
    "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
)
# fmt: on


def clean_resize(images_uint8: Tensor, size: int = 299) -> Tensor:
    """clean-fid's ``clean`` resize: each channel of each image as a float32 PIL image (mode
    ``F``), PIL bicubic to ``size`` x ``size``, clipped to [0, 255] and kept float (not
    re-quantised), as ``cleanfid.resize.make_resizer("PIL", False, "bicubic", ...)``.

    ``images_uint8``: (N, C, H, W) uint8. Returns float32 (N, C, size, size) in [0, 255] on the
    input's device. PIL runs on the CPU, one channel at a time, whatever the device.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) uint8 images, got {images_uint8.dtype}")
    arr = images_uint8.cpu().numpy().astype(np.float32)
    out = np.empty((*arr.shape[:2], size, size), dtype=np.float32)
    for i in range(arr.shape[0]):
        for c in range(arr.shape[1]):
            # A 2-D float32 array becomes a mode "F" image (no deprecated ``mode=`` argument).
            img = Image.fromarray(arr[i, c]).resize((size, size), resample=Image.BICUBIC)
            out[i, c] = np.asarray(img)
    np.clip(out, 0, 255, out=out)
    return torch.from_numpy(out).to(images_uint8.device)


def _forward_resized(net: nn.Module, x: Tensor, with_logits: bool) -> tuple[Tensor, ...]:
    """The network from an already resized and normalised ((x - 128) / 128) 299x299 float
    batch: the layer sequence of torchmetrics' ``NoTrainInceptionV3._torch_fidelity_forward``,
    itself torch-fidelity's ``FeatureExtractorInceptionV3.forward`` (both Apache-2.0), which
    insists on uint8 input and always resizes. Returns (features 2048[, logits_unbiased])."""
    for name in _LAYERS:
        x = getattr(net, name)(x)
    features = torch.flatten(x, 1)
    if not with_logits:
        return (features,)
    return features, features.mm(net.fc.weight.T)  # "logits_unbiased": no fc bias


class InceptionExtractor(nn.Module):
    """torchmetrics' NoTrainInceptionV3 (torch-fidelity's FID Inception) on resolved weights.

    Input is quantised to uint8 the way torchmetrics does with ``normalize=True``, then resized
    to 299x299 by ``resize``:

    - ``legacy`` (default): torch-fidelity's TF1-compatible bilinear resize (``antialias=False``),
      so the features equal those of ``FrechetInceptionDistance(feature=2048, antialias=False)``
      and FIDs match the published ones (TF1 Inception code, as in the papers).
    - ``clean``: clean-fid's PIL bicubic resize on float channels (Parmar et al. 2022), which
      does not alias when downsampling and is what clean-fid reports.

    The two give different features, so their FIDs are not comparable with each other; the
    mode is part of ``identity`` and hence of every cache key of real statistics.
    """

    def __init__(self, weights: Any, resize: str = "legacy") -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        if resize not in RESIZE_MODES:
            raise UserError(f"unknown metrics.resize {resize!r}; choose legacy or clean")
        self.resize = resize
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
        # when it was resolved): part of every cache key built on these features. The legacy
        # identity is unchanged so caches written before the resize option stay valid.
        self.weights_sha256 = weights.sha256
        self.identity = f"inception-{weights.sha256[:16]}"
        if resize == "clean":
            self.identity += "-clean"

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.size(1) == 1:
            images = images.expand(-1, 3, -1, -1)
        uint8 = (images * 255).byte()
        if self.resize == "clean":
            x = (clean_resize(uint8) - 128) / 128
            out = _forward_resized(self.net, x, self.has_logits)
        else:
            # NoTrainInceptionV3.forward returns only its first output; its torch-fidelity
            # forward returns all of them, so features and logits come from one pass.
            out = self.net._torch_fidelity_forward(uint8)
        n = images.size(0)
        result = {"features": out[0].reshape(n, -1)}
        if self.has_logits:
            result["logits"] = out[1].reshape(n, -1)
        return result
