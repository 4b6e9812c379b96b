"""CIFAR-10: torchvision's pickled batches or the JPEG image-folder tarball; no registry.

Two on-disk forms are accepted in data_dir or a mirror: ``cifar-10-batches-py/`` (the
official pickles, checked by torchvision's own md5 list) and ``cifar10-jpeg.tar.gz`` (a
re-encoded JPEG copy, checked by its sha256). The pickles are preferred when a folder has
both, since their pixels are the original ones. Labels come from the pickles' targets or
from the tarball's class folders, in the same class order.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import ClassVar

import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import check_integrity

from gan_lab.data.base import InMemoryImageDataModule
from gan_lab.data.classifier import DomainClassifierSpec
from gan_lab.data.sources import Loaded, Source, guarded_network
from gan_lab.data.tarball import read_jpeg_tarball
from gan_lab.data.verify import file_sha256, labels_problem, one_line


class CIFAR10DataModule(InMemoryImageDataModule):
    """CIFAR-10, 50,000 train / 10,000 test, native 32x32x3."""

    name: ClassVar[str] = "cifar10"
    title: ClassVar[str] = "CIFAR-10"
    official_name: ClassVar[str | None] = "torchvision.datasets.CIFAR10"
    # torchvision's class: its file list, md5s and unpickling; tests point it at fixtures.
    torchvision_class: ClassVar[type[CIFAR10]] = CIFAR10
    jpeg_tarball: ClassVar[str] = "cifar10-jpeg.tar.gz"
    jpeg_sha256: ClassVar[str] = "d488f09f1963cf6c29a9330431a05febe4b14f3614a7b329f7160733094b8366"
    jpeg_counts: ClassVar[dict[str, int]] = {"train": 50000, "test": 10000}
    default_image_size: ClassVar[int] = 32
    default_channels: ClassVar[int] = 3
    # torchvision's class order (batches.meta's label_names): the tarball's class folders
    # map onto it, so both forms give the same label to the same class.
    classes: ClassVar[tuple[str, ...]] = (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    num_classes: ClassVar[int | None] = len(classes)
    domain_classifier: ClassVar[DomainClassifierSpec | None] = DomainClassifierSpec(
        min_accuracy=0.65, epochs=8, hflip=True
    )

    def _pickle_files(self) -> list[tuple[str, str]]:
        cls = self.torchvision_class
        return [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]

    def find_local(self, root: Path, kind: str) -> Source | str:
        folder = root / self.torchvision_class.base_folder
        reasons = []
        if folder.is_dir():
            files = {name: folder / name for name, _ in self._pickle_files()}
            missing = [name for name, path in files.items() if not path.is_file()]
            if not missing:
                return Source(kind=kind, location=folder, files=files, layout="pickle")
            reasons.append(f"{folder.name}/ lacks {', '.join(missing)}")
        tarball = root / self.jpeg_tarball
        if tarball.is_file():
            return Source(kind, tarball, {"tarball": tarball}, layout="jpeg-tar")
        reasons.append(f"no {self.torchvision_class.base_folder}/ or {self.jpeg_tarball}")
        return ", ".join(reasons)

    # ------------------------------------------------------------ verification
    def _check_pickles(self, source: Source) -> str:
        """torchvision's md5 check of every batch file; digest of the (verified) md5 list."""
        for name, md5 in self._pickle_files():
            if not check_integrity(str(source.files[name]), md5):
                problem = f"fails torchvision's md5 integrity check (expected {md5})"
                raise self.bad_file(source.files[name], problem)
        return hashlib.sha256(",".join(m for _, m in self._pickle_files()).encode()).hexdigest()

    def _read_pickles(self, source: Source, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of one split via torchvision, which checks its md5s itself."""
        try:
            dataset = self.torchvision_class(str(source.location.parent), train=split == "train")
        except RuntimeError as err:  # "Dataset not found or corrupted": find which file
            self._check_pickles(source)
            raise self.bad_file(source.location, one_line(err)) from err
        problem = labels_problem(dataset.targets, len(self.classes))
        if problem is not None:
            raise self.bad_file(source.location, f"{split} {problem}")
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2)  # NHWC -> NCHW
        return images, torch.tensor(dataset.targets, dtype=torch.int64)

    def _check_tarball(self, source: Source) -> str:
        path = source.files["tarball"]
        digest = file_sha256(path)
        if digest != self.jpeg_sha256:
            problem = f"sha256 is {digest}, expected {self.jpeg_sha256} (truncated or another copy)"
            raise self.bad_file(path, problem)
        return digest

    def source_digest(self, source: Source, scratch: Path) -> str:
        if source.layout == "pickle":
            return self._check_pickles(source)
        return self._check_tarball(source)

    # ------------------------------------------------------------ decoding
    def load_source(self, source: Source, scratch: Path) -> Loaded:
        if source.layout == "pickle":
            images, labels = {}, {}
            for split in ("train", "test"):
                images[split], labels[split] = self._read_pickles(source, split)
            digest = hashlib.sha256(",".join(m for _, m in self._pickle_files()).encode())
            return Loaded(digest=digest.hexdigest(), images=images, labels=labels)
        digest = self._check_tarball(source)
        path = source.files["tarball"]
        try:
            images, labels = read_jpeg_tarball(path, tuple(self.jpeg_counts), self.classes)
        except ValueError as err:
            raise self.bad_file(path, one_line(err, 200)) from err
        for split, count in self.jpeg_counts.items():
            if len(images[split]) != count or images[split].shape[1:] != (3, 32, 32):
                found = f"{len(images[split])} images of {tuple(images[split].shape[1:])}"
                raise self.bad_file(path, f"{split}/ has {found}, expected {count} of (3, 32, 32)")
        return Loaded(digest=digest, images=images, labels=labels)

    # ------------------------------------------------------------ download
    def fetch_official(self, workdir: Path) -> Source:
        with guarded_network(self.download_timeout):
            self.torchvision_class(root=str(workdir), train=True, download=True)
        found = self.find_local(workdir, "download")
        if isinstance(found, str):
            raise RuntimeError(f"the download left no usable files ({found})")
        return found

    def keep_source(self, source: Source) -> Source:
        """Move the downloaded batches to ``data_dir/cifar-10-batches-py`` (same filesystem)."""
        dest = self.data_dir / source.location.name
        if source.kind != "download" or dest.exists():  # never replace the user's folder
            return source
        os.replace(source.location, dest)
        return source.moved("data_dir", dest, {n: dest / p.name for n, p in source.files.items()})

    def how_to_provide(self) -> str:
        return (
            "setting data.data_dir (GAN_LAB_DATA_DIR) to a folder with cifar-10-batches-py/ "
            "(torchvision's layout), adding a folder with cifar10-jpeg.tar.gz or "
            "cifar-10-batches-py/ to GAN_LAB_DATA_MIRRORS, or allowing data.download=true "
            "(torchvision; no package registry carries CIFAR-10)"
        )
