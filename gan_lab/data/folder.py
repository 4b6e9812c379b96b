"""Any folder of images, resized (shorter side) and center-cropped to ``image_size``.

Files are found recursively and sorted, so the dataset and its seeded train/held-out split
are the same on every machine. Unreadable files are skipped with a warning (one bad
download should not stop training on 100k good images), but a folder with no readable image
is an error. The cache is keyed by the folder's path and invalidated when any file's path,
size or mtime changes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import torch

from gan_lab.data.base import InMemoryImageDataModule
from gan_lab.data.decode import quiet_image_io, read_image
from gan_lab.data.sources import Loaded, Source
from gan_lab.data.transforms import fit_image
from gan_lab.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def scan_images(root: Path) -> list[Path]:
    """Image files under ``root`` (recursive, sorted), skipping hidden and macOS ``._`` files."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )


def held_out_split(
    everything: torch.Tensor, val_samples: int, seed: int, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out): a held-out subset chosen by ``seed``, ``val_samples`` images at most
    a tenth of them, for datasets without an official test split."""
    n = len(everything)
    if n < 2:
        log.warning("%s has one image: it is both train and held-out", what)
        return everything, everything
    n_val = max(1, min(val_samples, n // 10)) if val_samples else 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held_out = perm[:n_val].sort().values
    train = perm[n_val:].sort().values
    return everything[train], everything[held_out]


class ImageFolderDataModule(InMemoryImageDataModule):
    """Images of one folder; a seeded held-out subset plays the role of a test split.

    ``mirrors``, ``download`` and ``registry`` are accepted (so configs can swap datasets)
    and unused: the folder is the only source.
    """

    name: ClassVar[str] = "folder"
    title: ClassVar[str] = "image folder"

    default_image_size: ClassVar[int] = 64
    default_channels: ClassVar[int] = 3

    def __init__(self, root: str, data_dir: str, **kwargs: Any) -> None:
        """``root`` is the image folder; ``kwargs`` are InMemoryImageDataModule's."""
        super().__init__(data_dir, **kwargs)
        if root is None or not str(root).strip():
            raise UserError("data.root is empty; set it to a folder of images")
        self.root = Path(str(root)).expanduser().resolve()

    @property
    def cache_key(self) -> str:
        # Several folders can share one data_dir: the path's hash keeps their caches apart.
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        return f"folder-{self.root.name or 'root'}-{digest}"

    def candidate_roots(self) -> Iterator[tuple[str, Path]]:
        yield "data.root", self.root

    def find_local(self, root: Path, kind: str) -> Source | str:
        paths = scan_images(root)
        if not paths:
            return f"no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} files"
        files = {str(p.relative_to(root)): p for p in paths}
        return Source(kind=kind, location=root, files=files, layout="folder")

    def source_digest(self, source: Source, scratch: Path) -> str:
        return source.signature()  # paths, sizes and mtimes: re-reading every image is no gain

    def load_source(self, source: Source, scratch: Path) -> Loaded:
        paths = [source.files[k] for k in sorted(source.files)]
        out = torch.empty((len(paths), self.channels, self.image_size, self.image_size),
                          dtype=torch.uint8)  # fmt: skip
        ok = torch.zeros(len(paths), dtype=torch.bool)
        skipped: list[str] = []

        def work(i: int) -> None:
            try:
                image = read_image(paths[i], self.channels)
                out[i] = fit_image(image, self.image_size, self.channels)
                ok[i] = True
            except Exception as err:  # any undecodable file is skipped, not fatal
                skipped.append(f"{paths[i]} ({type(err).__name__})")

        # Decoding and resizing release the GIL, so threads use every core.
        with quiet_image_io(), ThreadPoolExecutor() as pool:
            list(pool.map(work, range(len(paths))))
        if skipped:
            log.warning(
                "%s %s: skipped %d unreadable file(s), e.g. %s",
                self.title, self.root, len(skipped), sorted(skipped)[0],
            )  # fmt: skip
        if not ok.any():
            raise UserError(
                f"image folder {self.root} has no readable image ({len(paths)} file(s) failed "
                f"to decode, e.g. {sorted(skipped)[0]}); set data.root to a folder of images"
            )
        info = {"found": len(paths), "skipped": len(skipped)}
        return Loaded(digest=source.signature(), images={"all": out[ok]}, info=info)

    def split_images(self, images: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return held_out_split(
            images["all"], self.val_samples, self.seed, f"{self.title} {self.root}"
        )

    def how_to_provide(self) -> str:
        return "setting data.root to an existing folder of jpg/jpeg/png/bmp/webp images"
