"""Files that readers never see half-written, and that survive a crash once written; their
sha256; the user cache folder."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a new or renamed file's name) to disk; a no-op off POSIX."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` via a temp file in the same folder and ``os.replace`` (atomic on POSIX).

    The temp file is fsynced before the rename and the folder after it: otherwise a crash
    soon after may leave the new name on an empty file (the rename reached the disk before
    the data), or the old file back (the rename itself was lost).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            # mkstemp makes 0600 files; give the file the permissions a plain open() would.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir(subfolder: str) -> Path:
    """``$GAN_LAB_CACHE/<subfolder>`` (default ``~/.cache/gan_lab/<subfolder>``): what gan_lab
    keeps across runs and projects (Inception weights, domain classifiers)."""
    root = os.environ.get("GAN_LAB_CACHE") or os.path.join("~", ".cache", "gan_lab")
    return Path(root).expanduser() / subfolder
