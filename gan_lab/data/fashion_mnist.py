"""Fashion-MNIST: data_dir, mirrors, torchvision's download, then Debian's package."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torchvision

from gan_lab.data.classifier import DomainClassifierSpec
from gan_lab.data.idx import IdxDataModule, IdxFile
from gan_lab.data.registry import debian_package_tree
from gan_lab.data.sources import Source


class FashionMNISTDataModule(IdxDataModule):
    """Zalando's Fashion-MNIST, 60,000 train / 10,000 test, native 28x28x1.

    No md5 is pinned for the uncompressed files (copies such as Debian's are recompressed,
    so the official .gz md5s don't apply); the header and exact size are checked instead.
    """

    name: ClassVar[str] = "fashion_mnist"
    title: ClassVar[str] = "Fashion-MNIST"
    official_name: ClassVar[str | None] = "torchvision.datasets.FashionMNIST"
    registry_name: ClassVar[str | None] = "Debian dataset-fashion-mnist"
    debian_package: ClassVar[str] = "dataset-fashion-mnist"
    idx_files: ClassVar[tuple[IdxFile, ...]] = (
        IdxFile("train", "train-images-idx3-ubyte", 60000),
        IdxFile("train", "train-labels-idx1-ubyte", 60000),
        IdxFile("test", "t10k-images-idx3-ubyte", 10000),
        IdxFile("test", "t10k-labels-idx1-ubyte", 10000),
    )
    # "fashion-mnist" is also where the Debian package installs it, in /usr/share/datasets.
    layouts: ClassVar[tuple[str, ...]] = ("FashionMNIST/raw", "fashion-mnist")
    domain_classifier: ClassVar[DomainClassifierSpec | None] = DomainClassifierSpec(
        min_accuracy=0.90, epochs=8
    )

    def fetch_official(self, workdir: Path) -> Source:
        return self._fetch_torchvision(torchvision.datasets.FashionMNIST, workdir)

    def fetch_registry(self, workdir: Path) -> Source:
        root = debian_package_tree(self.debian_package, workdir, self.registry_timeout)
        found = self.find_in_folder(root / "usr/share/datasets/fashion-mnist", "registry")
        if isinstance(found, str):
            raise RuntimeError(f"unexpected package contents: {found}")
        return found

    def how_to_provide(self) -> str:
        return (
            "setting data.data_dir (GAN_LAB_DATA_DIR) to a folder with FashionMNIST/raw/"
            "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz], adding a folder with "
            "fashion-mnist/*.gz to GAN_LAB_DATA_MIRRORS (apt-get install dataset-fashion-mnist "
            "puts one in /usr/share/datasets), allowing data.download=true (torchvision), or "
            "data.registry=true (Debian package dataset-fashion-mnist)"
        )
