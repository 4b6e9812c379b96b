"""Any folder of images, resized (shorter side) and center-cropped to ``image_size``.

Files are found recursively and sorted, so the dataset and its fixed train/held-out split
(:func:`held_out_split`) are the same on every machine and in every run. Unreadable files are
skipped with a warning (one bad download should not stop training on 100k good images), but a
folder with no readable image is an error. The cache is keyed by the folder's path and
invalidated when any file's path, size or mtime changes.
"""

from __future__ import annotations

import hashlib
import logging
import math
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


def held_out_size(num_images: int, held_out: int, fraction: float) -> int:
    """``min(held_out, floor(fraction * num_images))``: e.g. 10,000 of LSUN's 200,000 images,
    30 of a folder of 300 (the cap keeps most of a small folder for training)."""
    return min(held_out, math.floor(num_images * fraction + 1e-9))


def held_out_split(
    everything: torch.Tensor, held_out: int, fraction: float, split_seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) for datasets without an official test split: disjoint, and fixed by
    the data config alone (``split_seed``, ``held_out``, ``fraction``; see
    :func:`held_out_size`), never by the training seed or by ``metrics.num_samples``.

    Validation and ``gan_lab.eval`` compare the first N held-out images; they come in the
    seeded permutation's order, so any first N are a uniform random subset of the folder
    (sorted file order would favour its first subfolders).
    """
    n_held = held_out_size(len(everything), held_out, fraction)
    perm = torch.randperm(len(everything), generator=torch.Generator().manual_seed(split_seed))
    train = perm[n_held:].sort().values  # file order: the loader shuffles anyway
    return everything[train], everything[perm[:n_held]]


class ImageFolderDataModule(InMemoryImageDataModule):
    """Images of one folder; a fixed held-out subset plays the role of a test split.

    ``mirrors``, ``download`` and ``registry`` are accepted (so configs can swap datasets)
    and unused: the folder is the only source.
    """

    name: ClassVar[str] = "folder"
    title: ClassVar[str] = "image folder"

    default_image_size: ClassVar[int] = 64
    default_channels: ClassVar[int] = 3
    has_official_test_split: ClassVar[bool] = False

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
        return held_out_split(images["all"], self.held_out, self.held_out_fraction, self.split_seed)

    def how_to_provide(self) -> str:
        return "setting data.root to an existing folder of jpg/jpeg/png/bmp/webp images"
