"""In-memory image datamodules: MNIST, Fashion-MNIST, CIFAR-10 and any image folder.

Each yields uint8 batches [B, C, H, W] (no labels) that become float [-1, 1] on the device;
MNIST, Fashion-MNIST and CIFAR-10 also give their class labels (``train_labels()``,
``test_labels()``, ``num_classes``) for a domain classifier. See :mod:`gan_lab.data.base`
for where data is looked for and how it is cached.
"""

from gan_lab.data.base import InMemoryImageDataModule
from gan_lab.data.cifar10 import CIFAR10DataModule
from gan_lab.data.dataset import TensorImageDataset
from gan_lab.data.fashion_mnist import FashionMNISTDataModule
from gan_lab.data.folder import ImageFolderDataModule
from gan_lab.data.lsun import LSUNBedroomDataModule
from gan_lab.data.mnist import MNISTDataModule
from gan_lab.data.transforms import fit_images, to_float_images

__all__ = [
    "CIFAR10DataModule",
    "FashionMNISTDataModule",
    "ImageFolderDataModule",
    "InMemoryImageDataModule",
    "LSUNBedroomDataModule",
    "MNISTDataModule",
    "TensorImageDataset",
    "fit_images",
    "to_float_images",
]
