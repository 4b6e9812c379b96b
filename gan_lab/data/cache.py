"""The decoded-tensor cache: a uint8 tensor file per split (and an int64 label file per split
for labelled datasets) plus a JSON record of their source.

Decoding (gunzip + checksum + JPEG decode + resize) is done once by ``prepare_data``; every
later run and every DDP rank just ``torch.load``s the result. Files are written to a temp
name and ``os.replace``d, so a crash never leaves a half-written cache that looks valid, and
the JSON record is written last: its presence means every tensor file is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from gan_lab.errors import UserError
from gan_lab.io import atomic_write

# 2: labels beside the images. A cache of another format is ignored and rebuilt.
CACHE_FORMAT = 2


class ImageCache:
    """Cached uint8 images (and int64 labels if ``labeled``) of one dataset at one size."""

    def __init__(
        self, directory: Path, key: str, image_size: int, channels: int, labeled: bool = False
    ) -> None:
        self.directory = Path(directory)
        self.key = key
        self.image_size = image_size
        self.channels = channels
        self.labeled = labeled
        self.stem = f"{key}-{image_size}px-{channels}ch"
        self.meta_path = self.directory / f"{self.stem}.json"

    def tensor_path(self, split: str) -> Path:
        return self.directory / f"{self.key}-{split}-{self.image_size}px-{self.channels}ch.pt"

    def labels_path(self, split: str) -> Path:
        # Per size like the images (not shared), so one JSON record vouches for both files.
        return self.tensor_path(f"{split}-labels")

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
            # A size mismatch means someone replaced or truncated a tensor file.
            if not _has_size(self.tensor_path(split), info.get("bytes")):
                return None
            if self.labeled and not _has_size(self.labels_path(split), info.get("labels_bytes")):
                return None
        return meta

    def write(
        self,
        images: dict[str, torch.Tensor],
        labels: dict[str, torch.Tensor] | None = None,
        *,
        signature: str,
        digest: str,
        **info: Any,
    ) -> dict[str, Any]:
        """Store ``images`` (split -> uint8 [N, C, H, W]) and the record of their source.

        ``labels`` (split -> int64 [N], aligned with the images) is required if ``labeled``.
        """
        splits = {}
        for split, x in images.items():
            path = _save(self.tensor_path(split), x)
            splits[split] = {"file": path.name, "count": len(x), "bytes": path.stat().st_size}
            if self.labeled:
                y = (labels or {}).get(split)
                if y is None or y.dtype != torch.int64 or y.shape != (len(x),):
                    # A bug in a datamodule, not a user mistake: keep the traceback.
                    raise ValueError(f"{self.key} {split}: labels must be int64 [{len(x)}]")
                path = _save(self.labels_path(split), y)
                splits[split].update(labels_file=path.name, labels_bytes=path.stat().st_size)
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
        return {
            split: _load_checked(
                self.tensor_path(split),
                torch.uint8,
                (info["count"], self.channels, self.image_size, self.image_size),
                "uint8 images",
            )
            for split, info in meta["splits"].items()
        }

    def load_labels(self, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Load every split's labels (int64 [N]); damage is a UserError like for images."""
        return {
            split: _load_checked(
                self.labels_path(split), torch.int64, (info["count"],), "int64 labels"
            )
            for split, info in meta["splits"].items()
        }


def _load_checked(
    path: Path, dtype: torch.dtype, shape: tuple[int, ...], what: str
) -> torch.Tensor:
    """A cached tensor of this dtype and shape, or a UserError saying to delete the file."""
    x = _load(path)
    if not isinstance(x, torch.Tensor) or x.dtype != dtype or tuple(x.shape) != shape:
        raise UserError(
            f"cache file {path} does not hold {what} of shape {shape}; delete it and run "
            "again to rebuild it from the source"
        )
    return x


def _has_size(path: Path, size: Any) -> bool:
    return path.is_file() and path.stat().st_size == size


def _save(path: Path, x: torch.Tensor) -> Path:
    atomic_write(path, lambda f: torch.save(x.contiguous(), f))
    return path


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(
            f"cache file {path} is unreadable ({type(err).__name__}); delete it "
            "and run again to rebuild it from the source"
        ) from err
