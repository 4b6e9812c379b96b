"""Checks that a data file is what it claims to be: checksums, IDX headers, labels, signatures.

Every source (mirror, download, registry) goes through these before anything is decoded,
so a truncated or substituted file becomes a clear error instead of a silently bad dataset.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

from torchvision.datasets.utils import calculate_md5

# Shared with the metrics (weights files, error messages): they live in the base layer.
from gan_lab.errors import one_line
from gan_lab.io import file_sha256

# IDX magic numbers: 0x08 = unsigned byte, then the number of dimensions.
IDX_UBYTE = 0x00000800
IDX_UBYTE_3D = IDX_UBYTE | 3

__all__ = [
    "IDX_UBYTE_3D",
    "file_md5",
    "file_sha256",
    "idx_images_problem",
    "idx_labels_problem",
    "labels_problem",
    "one_line",
    "stat_signature",
]


def file_md5(path: str | os.PathLike) -> str:
    """md5 hex digest of a file (torchvision's own helper, chunked)."""
    return calculate_md5(str(path))


def idx_images_problem(path: str | os.PathLike, count: int, rows: int, cols: int) -> str | None:
    """Why ``path`` is not an uncompressed IDX file of ``count`` uint8 images, or None if it is.

    torchvision's IDX reader only asserts on a bad header and, for images, does not check the
    length at all, so a truncated file would fail deep inside it; this check names the problem.
    """
    return _idx_problem(path, (count, rows, cols), "image")


def idx_labels_problem(path: str | os.PathLike, count: int, num_classes: int) -> str | None:
    """Why ``path`` is not an uncompressed IDX file of ``count`` labels in 0..num_classes-1.

    The values are checked too (the file is small): a label out of range would only surface
    as an index error deep inside a classifier's loss.
    """
    problem = _idx_problem(path, (count,), "label")
    if problem is not None:
        return problem
    with open(path, "rb") as f:
        return labels_problem(f.read()[8:], num_classes)


def labels_problem(labels: Sequence[int], num_classes: int) -> str | None:
    """Why ``labels`` are not all class indices 0..num_classes-1, or None if they are."""
    bad = next((i for i, v in enumerate(labels) if not 0 <= v < num_classes), None)
    if bad is None:
        return None
    return f"label {labels[bad]} at index {bad} is outside 0..{num_classes - 1}"


def _idx_problem(path: str | os.PathLike, dims: tuple[int, ...], what: str) -> str | None:
    """Why ``path`` is not an uncompressed uint8 IDX file of shape ``dims``, or None.

    An IDX file is a 4-byte magic (0x08 = uint8, then the number of dimensions), one
    big-endian uint32 per dimension, then the values: its exact size is known from ``dims``.
    """
    header_bytes = 4 + 4 * len(dims)
    expected_bytes = header_bytes + math.prod(dims)
    actual_bytes = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(header_bytes)
    if len(header) < header_bytes:
        return f"only {actual_bytes} bytes, expected {expected_bytes} (truncated)"
    magic, *found = struct.unpack(f">{1 + len(dims)}I", header)
    expected_magic = IDX_UBYTE | len(dims)
    if magic != expected_magic:
        return f"not an IDX {what} file (magic 0x{magic:08x}, expected 0x{expected_magic:08x})"
    if tuple(found) != dims:
        return f"header says {_shape_text(found, what)}, expected {_shape_text(dims, what)}"
    if actual_bytes != expected_bytes:
        state = "truncated" if actual_bytes < expected_bytes else "trailing data"
        return f"{actual_bytes} bytes, expected {expected_bytes} ({state})"
    return None


def _shape_text(dims: Sequence[int], what: str) -> str:
    # (60000, 28, 28) -> "60000 images of 28x28"; (60000,) -> "60000 labels"
    count, *item = dims
    return f"{count} {what}s" + (f" of {'x'.join(map(str, item))}" if item else "")


def stat_signature(paths: Iterable[str | os.PathLike]) -> str:
    """A cheap fingerprint of files (resolved path, size, mtime) without reading them.

    Stored beside a cache so a re-run can tell "same files as last time" from a stat call
    instead of re-hashing hundreds of MB; a mismatch only triggers a real checksum.
    """
    entries = []
    for p in paths:
        st = os.stat(p)
        entries.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps(entries, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()
