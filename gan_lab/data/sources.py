"""Where data can come from: mirror lists, found sources, and a network guard for downloads."""

from __future__ import annotations

import contextlib
import io
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from gan_lab.data.verify import stat_signature


@dataclass(frozen=True)
class Source:
    """Files of one dataset found in one place.

    ``kind`` is ``data_dir``, ``mirror``, ``download``, ``registry`` or ``folder``;
    ``files`` maps a dataset-specific name (a split, a batch file) to its path;
    ``layout`` tells a dataset with several on-disk formats which one this is.
    """

    kind: str
    location: Path
    files: dict[str, Path]
    layout: str = ""

    def describe(self) -> str:
        return f"{self.kind} {self.location}"

    def signature(self) -> str:
        return stat_signature(self.files[k] for k in sorted(self.files))

    def moved(self, kind: str, location: Path, files: dict[str, Path]) -> Source:
        return replace(self, kind=kind, location=location, files=files)


@dataclass
class Loaded:
    """A verified source decoded to native uint8 images per split, plus its content digest.

    ``labels`` holds each split's class indices (int64 [N], aligned with its images) for a
    labelled dataset, and is empty otherwise.
    """

    digest: str
    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def parse_mirrors(mirrors: str | Sequence[str] | None) -> list[Path]:
    """Mirror folders from an ``os.pathsep``-separated string (an env var) or a list.

    Empty entries are dropped (``"a::b"`` or an unset env var giving ``""``); folders that
    don't exist are kept here and skipped at search time, so the final error can list them.
    """
    if mirrors is None:
        return []
    entries = mirrors.split(os.pathsep) if isinstance(mirrors, str) else [str(m) for m in mirrors]
    return [Path(e.strip()).expanduser() for e in entries if e and e.strip()]


@contextlib.contextmanager
def guarded_network(timeout: float) -> Iterator[None]:
    """Run a torchvision download with a socket timeout and without its console chatter.

    torchvision's downloader opens URLs with no timeout, so a stalled connection would hang
    training forever; the process-wide default timeout bounds every connect and read. Its
    prints and progress bars are swallowed: the caller logs one line about the outcome.
    """
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        socket.setdefaulttimeout(previous)
