"""Decode an image-folder tarball (``<split>/<class>/<name>.jpg``) straight from memory.

The archive is read and gunzipped in one go and its members are sliced out of that buffer
as zero-copy tensors, so 60,000 small JPEGs never touch the disk; torchvision's
``decode_jpeg`` then decodes them in batches of encoded tensors. Each image's label is the
index of its class folder in a given class list.
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
    path: Path, splits: Sequence[str], classes: Sequence[str], batch: int = 2048
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(images, labels) per split: uint8 RGB [N, 3, H, W] and int64 [N], sorted by member name.

    A member belongs to the split named by the first path component that is a split name,
    so ``train/cat/0001.jpg`` and ``cifar10/train/cat/0001.jpg`` both work; its label is the
    index in ``classes`` of the folder right below the split. Raises ValueError for an
    unreadable archive, a JPEG outside a known class folder, a JPEG that does not decode, or
    images of different sizes.
    """
    data = bytearray(path.read_bytes())
    try:
        if data[:2] == b"\x1f\x8b":  # gzip magic
            data = bytearray(gzip.decompress(data))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            members = [m for m in tf.getmembers() if m.isfile()]
    except (OSError, EOFError, tarfile.TarError) as err:
        raise ValueError(f"not a readable tar(.gz) archive ({err})") from err
    by_split: dict[str, list[tuple[tarfile.TarInfo, int]]] = {s: [] for s in splits}
    for m in members:
        parts = Path(m.name).parts
        at = next((i for i, p in enumerate(parts[:-1]) if p in by_split), None)
        if at is None or not m.name.lower().endswith(JPEG_SUFFIXES):
            continue
        by_split[parts[at]].append((m, _class_index(m.name, parts[at + 1 : -1], classes)))
    images, labels = {}, {}
    for split, entries in by_split.items():
        entries.sort(key=lambda e: e[0].name)
        # Views into the one buffer: no per-image copies before decoding.
        encoded = [torch.frombuffer(data, dtype=torch.uint8, offset=m.offset_data, count=m.size)
                   for m, _ in entries]  # fmt: skip
        images[split] = decode_jpegs(encoded, [m.name for m, _ in entries], batch)
        labels[split] = torch.tensor([label for _, label in entries], dtype=torch.int64)
    return images, labels


def _class_index(name: str, folders: Sequence[str], classes: Sequence[str]) -> int:
    """Index in ``classes`` of a member's class folder (the first folder below its split)."""
    if not folders or folders[0] not in classes:
        found = f"folder {folders[0]!r}" if folders else "no class folder"
        raise ValueError(f"{name} is in {found}, not one of {', '.join(classes)}")
    return list(classes).index(folders[0])
