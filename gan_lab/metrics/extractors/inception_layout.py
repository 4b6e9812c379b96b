"""torch-fidelity's InceptionV3 weights files: the official file, the layout a file must have.

torchmetrics computes FID/KID with torch-fidelity's ``FeatureExtractorInceptionV3``, which
``torch.load``-s a weights file and loads it with a *strict* ``load_state_dict``: every
convolution/batch-norm tensor AND the 1008-way logits layer ``fc`` must be present. Shared by
the resolution (:mod:`.inception_weights`) and the registry conversion (:mod:`.inception_registry`).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from gan_lab.errors import UserError, one_line
from gan_lab.io import file_sha256

# torch-fidelity's official file (with the logits layer). Its name carries torch.hub's
# "-<sha256 prefix>." convention; torch.hub checks it on download, we check it on use.
try:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3 as OFFICIAL_URL
except ImportError:  # pragma: no cover - torch-fidelity is a dependency
    OFFICIAL_URL = (
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth"
    )
OFFICIAL_FILENAME = OFFICIAL_URL.rsplit("/", 1)[-1]
OFFICIAL_SHA256_PREFIX = re.search(r"-([a-f0-9]+)\.", OFFICIAL_FILENAME).group(1)  # "6726825d"
LOGIT_KEYS = ("fc.weight", "fc.bias")

# InceptionWeights.source values.
SOURCE_CONFIGURED = "configured"
SOURCE_HUB_CACHE = "torch-hub-cache"
SOURCE_OFFICIAL_DOWNLOAD = "official-download"
SOURCE_CONVERTED_CACHE = "converted-cache"
SOURCE_CONVERTED_REGISTRY = "converted-registry"

_HOW_TO_SUPPLY = (
    f"download {OFFICIAL_URL} and set metrics.weights_path=<file>, "
    f"or put it in $TORCH_HOME/hub/checkpoints/ (now {{hub}})"
)


@dataclass(frozen=True)
class InceptionWeights:
    """A weights file loadable by torch-fidelity's FeatureExtractorInceptionV3 (strictly)."""

    path: Path
    sha256: str
    source: str
    has_logits: bool


def official_cache_path() -> Path:
    """Where torch-fidelity (via torch.hub) keeps its weights; honours ``TORCH_HOME``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_FILENAME


def how_to_supply() -> str:
    return _HOW_TO_SUPPLY.format(hub=official_cache_path().parent)


@lru_cache(maxsize=1)
def reference_layout() -> tuple[tuple[tuple[str, tuple[int, ...], torch.dtype], ...], tuple]:
    """(key, shape, dtype) of torch-fidelity's state dict, and its BasicConv2d names in order.

    Taken from the installed torch-fidelity class itself (built on the meta device, loading an
    empty dict), so it cannot drift from what torchmetrics will load.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import (
        BasicConv2d,
        FeatureExtractorInceptionV3,
    )

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args: Any, **kwargs: Any) -> None:
            return None

    with tempfile.TemporaryDirectory(prefix="gan_lab-skeleton-") as tmp:
        empty = os.path.join(tmp, "empty.pth")
        torch.save({}, empty)
        with torch.device("meta"):
            net = _Skeleton("skeleton", ["2048"], feature_extractor_weights_path=empty)
    layout = tuple((k, tuple(v.shape), v.dtype) for k, v in net.state_dict().items())
    convs = tuple(name for name, m in net.named_modules() if isinstance(m, BasicConv2d))
    return layout, convs


def load_state_dict_file(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Load ``path`` safely (``weights_only``) and check it against torch-fidelity's layout."""
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; {how_to_supply()}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's to fix
        raise UserError(
            f"{what} {path} is not a PyTorch state dict ({one_line(e, 120)}); {how_to_supply()}"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(
            f"{what} {path} is not a state dict of tensors ({type(sd).__name__}); {how_to_supply()}"
        )
    layout, _ = reference_layout()
    expected = {k: shape for k, shape, _ in layout}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != expected[k]]
    if missing or unexpected or wrong:
        if missing:
            detail = f"missing {missing[:2]}"
        elif unexpected:
            detail = f"unexpected {unexpected[:2]}"
        else:
            detail = f"wrong shape {wrong[:2]}"
        raise UserError(
            f"{what} {path} is not torch-fidelity's InceptionV3 state dict "
            f"({detail}, {len(missing)}/{len(unexpected)}/{len(wrong)} missing/unexpected/"
            f"misshapen keys); {how_to_supply()}"
        )
    bad = [
        k
        for k, v in sd.items()
        if k not in LOGIT_KEYS and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise UserError(f"{what} {path} has non-finite values in {bad[0]}; {how_to_supply()}")
    return sd


def has_logits(sd: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(sd[k]).all()) for k in LOGIT_KEYS)


def weights_from_file(path: Path, source: str, what: str) -> InceptionWeights:
    sd = load_state_dict_file(path, what)
    return InceptionWeights(path, file_sha256(path), source, has_logits(sd))
