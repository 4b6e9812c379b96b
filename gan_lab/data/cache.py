"""The decoded-tensor cache: one uint8 tensor file per split plus a JSON record of its source.

Decoding (gunzip + checksum + JPEG decode + resize) is done once by ``prepare_data``; every
later run and every DDP rank just ``torch.load``s the result. Files are written to a temp
name and ``os.replace``d, so a crash never leaves a half-written cache that looks valid, and
the JSON record is written last: its presence means every tensor file is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from gan_lab.errors import UserError

CACHE_FORMAT = 1


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` via a temp file in the same folder and ``os.replace`` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        # mkstemp makes 0600 files; give the cache the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ImageCache:
    """Cached uint8 images of one dataset at one (image_size, channels)."""

    def __init__(self, directory: Path, key: str, image_size: int, channels: int) -> None:
        self.directory = Path(directory)
        self.key = key
        self.image_size = image_size
        self.channels = channels
        self.stem = f"{key}-{image_size}px-{channels}ch"
        self.meta_path = self.directory / f"{self.stem}.json"

    def tensor_path(self, split: str) -> Path:
        return self.directory / f"{self.key}-{split}-{self.image_size}px-{self.channels}ch.pt"

    def read_meta(self) -> dict[str, Any] | None:
        """The record of a complete cache for these settings, or None if there is none."""
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(meta, dict)
            or meta.get("format") != CACHE_FORMAT
            or meta.get("image_size") != self.image_size
            or meta.get("channels") != self.channels
            or not isinstance(meta.get("splits"), dict)
        ):
            return None
        for split, info in meta["splits"].items():
            path = self.tensor_path(split)
            # A size mismatch means someone replaced or truncated the tensor file.
            if not path.is_file() or path.stat().st_size != info.get("bytes"):
                return None
        return meta

    def write(
        self, images: dict[str, torch.Tensor], *, signature: str, digest: str, **info: Any
    ) -> dict[str, Any]:
        """Store ``images`` (split -> uint8 [N, C, H, W]) and the record of their source."""
        splits = {}
        for split, x in images.items():
            path = self.tensor_path(split)
            atomic_write(path, lambda f, x=x: torch.save(x.contiguous(), f))
            splits[split] = {"file": path.name, "count": len(x), "bytes": path.stat().st_size}
        meta = {
            "format": CACHE_FORMAT,
            "key": self.key,
            "image_size": self.image_size,
            "channels": self.channels,
            "signature": signature,
            "digest": digest,
            "splits": splits,
            **info,
        }
        self.write_meta(meta)
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        blob = json.dumps(meta, indent=1, sort_keys=True).encode()
        atomic_write(self.meta_path, lambda f: f.write(blob))

    def load(self, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Load every split; a damaged tensor file is a UserError that says to delete it."""
        out = {}
        for split, info in meta["splits"].items():
            path = self.tensor_path(split)
            try:
                x = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:
                raise UserError(
                    f"cache file {path} is unreadable ({type(err).__name__}); delete it "
                    "and run again to rebuild it from the source"
                ) from err
            shape = (info["count"], self.channels, self.image_size, self.image_size)
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.shape != shape:
                raise UserError(
                    f"cache file {path} does not hold uint8 images of shape {shape}; delete "
                    "it and run again to rebuild it from the source"
                )
            out[split] = x
        return out
