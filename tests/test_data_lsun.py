"""LSUN bedrooms: a small lmdb in the official layout, read through torchvision's LSUN."""

from __future__ import annotations

import hashlib
import io
import os

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image

from gan_lab.data import LSUNBedroomDataModule
from gan_lab.errors import UserError


def write_lsun_lmdb(root, n=30, size=(80, 60)):
    """``root/bedroom_train_lmdb``: sha1-hex keys -> JPEG bytes, as LSUN's export writes."""
    rng = np.random.default_rng(0)
    (root / "bedroom_train_lmdb").mkdir(parents=True)
    env = lmdb.open(str(root / "bedroom_train_lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(n):
            color = np.full((size[1], size[0], 3), (i * 8) % 256, np.uint8)
            color[..., 1] = rng.integers(0, 256)
            buf = io.BytesIO()
            Image.fromarray(color).save(buf, format="JPEG", quality=95)
            txn.put(hashlib.sha1(str(i).encode()).hexdigest().encode(), buf.getvalue())
        txn.put(b"ffffffffff-damaged", b"not an image")
    env.close()


def test_lsun_lmdb_decodes_resizes_and_splits(tmp_path):
    write_lsun_lmdb(tmp_path / "mirror")
    cwd_before = set(os.listdir(os.getcwd()))
    dm = LSUNBedroomDataModule(str(tmp_path / "data"), mirrors=[str(tmp_path / "mirror")],
                               image_size=32, val_samples=3, max_images=100)  # fmt: skip
    train, test = dm.train_images(), dm.test_images()
    assert train.shape == (27, 3, 32, 32) and test.shape == (3, 3, 32, 32)
    assert train.dtype == torch.uint8
    assert set(os.listdir(os.getcwd())) == cwd_before  # torchvision's key cache went elsewhere
    capped = LSUNBedroomDataModule(str(tmp_path / "data2"), mirrors=[str(tmp_path / "mirror")],
                                   image_size=32, val_samples=1, max_images=10)  # fmt: skip
    assert len(capped.train_images()) + len(capped.test_images()) == 10


def test_missing_lmdb_is_one_clear_error(tmp_path):
    dm = LSUNBedroomDataModule(str(tmp_path / "data"), mirrors=[str(tmp_path)])
    with pytest.raises(UserError, match="LSUN bedrooms not found.*bedroom_train_lmdb"):
        dm.setup()


def test_corrupt_lmdb_names_the_file(tmp_path):
    folder = tmp_path / "bedroom_train_lmdb"
    folder.mkdir()
    (folder / "data.mdb").write_bytes(b"\x00" * 100)
    dm = LSUNBedroomDataModule(str(tmp_path / "data"), mirrors=[str(tmp_path)])
    with pytest.raises(UserError, match="data.mdb"):
        dm.setup()


def test_relative_data_dir_works_and_cwd_is_untouched(tmp_path, monkeypatch):
    """The default ``data_dir`` is the relative ``data``: the lmdb must be found there, and
    the working directory must neither change nor get torchvision's key cache."""
    monkeypatch.chdir(tmp_path)
    write_lsun_lmdb(tmp_path / "data", n=20)
    before = set(os.listdir(tmp_path))
    dm = LSUNBedroomDataModule("data", mirrors=[], image_size=16, max_images=100)
    assert len(dm.train_images()) + len(dm.test_images()) == 20
    assert os.getcwd() == str(tmp_path) and set(os.listdir(tmp_path)) == before
