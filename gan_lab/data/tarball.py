"""Decode an image-folder tarball (``<split>/<class>/<name>.jpg``) straight from memory.

The archive is read and gunzipped in one go and its members are sliced out of that buffer
as zero-copy tensors, so 60,000 small JPEGs never touch the disk; torchvision's
``decode_jpeg`` then decodes them in batches of encoded tensors.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

import torch

from gan_lab.data.decode import decode_jpegs

JPEG_SUFFIXES = (".jpg", ".jpeg")


def read_jpeg_tarball(
    path: Path, splits: Sequence[str], batch: int = 2048
) -> dict[str, torch.Tensor]:
    """uint8 RGB images [N, 3, H, W] per split, each split sorted by member name.

    A member belongs to the split named by the first path component that is a split name,
    so ``train/cat/0001.jpg`` and ``cifar10/train/cat/0001.jpg`` both work. Raises ValueError
    for an unreadable archive, a JPEG that does not decode, or images of different sizes.
    """
    data = bytearray(path.read_bytes())
    try:
        if data[:2] == b"\x1f\x8b":  # gzip magic
            data = bytearray(gzip.decompress(data))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            members = [m for m in tf.getmembers() if m.isfile()]
    except (OSError, EOFError, tarfile.TarError) as err:
        raise ValueError(f"not a readable tar(.gz) archive ({err})") from err
    by_split: dict[str, list[tarfile.TarInfo]] = {s: [] for s in splits}
    for m in members:
        parts = Path(m.name).parts
        split = next((p for p in parts[:-1] if p in by_split), None)
        if split is not None and m.name.lower().endswith(JPEG_SUFFIXES):
            by_split[split].append(m)
    out = {}
    for split, ms in by_split.items():
        ms.sort(key=lambda m: m.name)
        # Views into the one buffer: no per-image copies before decoding.
        encoded = [torch.frombuffer(data, dtype=torch.uint8, offset=m.offset_data, count=m.size)
                   for m in ms]  # fmt: skip
        out[split] = decode_jpegs(encoded, [m.name for m in ms], batch)
    return out
