"""Checks that a data file is what it claims to be: checksums, IDX headers, file signatures.

Every source (mirror, download, registry) goes through these before anything is decoded,
so a truncated or substituted file becomes a clear error instead of a silently bad dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from torchvision.datasets.utils import calculate_md5

# IDX magic numbers: 0x08 = unsigned byte, then the number of dimensions.
IDX_UBYTE_3D = 0x00000803

__all__ = [
    "IDX_UBYTE_3D",
    "file_md5",
    "file_sha256",
    "idx_images_problem",
    "one_line",
    "stat_signature",
]


def file_md5(path: str | os.PathLike) -> str:
    """md5 hex digest of a file (torchvision's own helper, chunked)."""
    return calculate_md5(str(path))


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks so large archives need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def idx_images_problem(path: str | os.PathLike, count: int, rows: int, cols: int) -> str | None:
    """Why ``path`` is not an uncompressed IDX file of ``count`` uint8 images, or None if it is.

    torchvision's IDX reader only asserts on a bad header and, for images, does not check the
    length at all, so a truncated file would fail deep inside it; this check names the problem.
    """
    expected_bytes = 16 + count * rows * cols
    actual_bytes = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(16)
    if len(header) < 16:
        return f"only {actual_bytes} bytes, expected {expected_bytes} (truncated)"
    magic, n, r, c = struct.unpack(">IIII", header)
    if magic != IDX_UBYTE_3D:
        return f"not an IDX image file (magic 0x{magic:08x}, expected 0x{IDX_UBYTE_3D:08x})"
    if (n, r, c) != (count, rows, cols):
        return f"header says {n} images of {r}x{c}, expected {count} of {rows}x{cols}"
    if actual_bytes != expected_bytes:
        state = "truncated" if actual_bytes < expected_bytes else "trailing data"
        return f"{actual_bytes} bytes, expected {expected_bytes} ({state})"
    return None


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


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """An exception's message squeezed onto one short line, for error lists and logs."""
    text = err if isinstance(err, str) else (str(err) or type(err).__name__)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
