"""LSUN bedrooms: a small lmdb in the official layout, written with the lmdb package and read
by the datamodule's own lmdb reader."""

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


def lsun_gray(i: int) -> int:
    """The first channel's value of record ``i`` of :func:`write_lsun_lmdb`."""
    return (i * 8) % 256


def write_lsun_lmdb(root, n=30, size=(80, 60)):
    """``root/bedroom_train_lmdb``: 40-hex-digit keys -> encoded image bytes, as LSUN's
    release has them (JPEG per its README, WebP in later copies: both are here, alternating),
    and one damaged record. Each image is one flat colour, red = ``lsun_gray(i)``."""
    rng = np.random.default_rng(0)
    (root / "bedroom_train_lmdb").mkdir(parents=True)
    env = lmdb.open(str(root / "bedroom_train_lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i in range(n):
            color = np.full((size[1], size[0], 3), lsun_gray(i), np.uint8)
            color[..., 1] = rng.integers(0, 256)
            buf = io.BytesIO()
            Image.fromarray(color).save(buf, format="JPEG" if i % 2 else "WEBP", quality=95)
            txn.put(hashlib.sha1(str(i).encode()).hexdigest().encode(), buf.getvalue())
        txn.put(b"ffffffffff-damaged", b"not an image")
    env.close()


def reds(*batches: torch.Tensor) -> list[int]:
    """Every image's mean first channel, sorted."""
    return sorted(round(x[0].float().mean().item()) for b in batches for x in b)


def test_lsun_lmdb_decodes_resizes_and_splits(tmp_path):
    write_lsun_lmdb(tmp_path / "mirror")
    cwd_before = set(os.listdir(os.getcwd()))
    dm = LSUNBedroomDataModule(str(tmp_path / "data"), mirrors=[str(tmp_path / "mirror")],
                               image_size=32, val_samples=3, max_images=100)  # fmt: skip
    train, test = dm.train_images(), dm.test_images()
    assert train.shape == (27, 3, 32, 32) and test.shape == (3, 3, 32, 32)
    assert train.dtype == torch.uint8
    written = sorted(lsun_gray(i) for i in range(30))
    assert np.allclose(reds(train, test), written, atol=2)  # every record decoded, once
    assert set(os.listdir(os.getcwd())) == cwd_before  # no key cache in the working directory
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
    the working directory must neither change nor get a key cache (torchvision's LSUNClass
    writes one there)."""
    monkeypatch.chdir(tmp_path)
    write_lsun_lmdb(tmp_path / "data", n=20)
    before = set(os.listdir(tmp_path))
    dm = LSUNBedroomDataModule("data", mirrors=[], image_size=16, max_images=100)
    assert len(dm.train_images()) + len(dm.test_images()) == 20
    assert os.getcwd() == str(tmp_path) and set(os.listdir(tmp_path)) == before


def test_records_torchvision_cannot_decode_go_through_pil(tmp_path, monkeypatch):
    """PIL decodes what torchvision's decoder refuses, to the same pixels."""
    import gan_lab.data.decode as decode

    write_lsun_lmdb(tmp_path / "mirror", n=12)
    kwargs = {"mirrors": [str(tmp_path / "mirror")], "image_size": 16, "val_samples": 2}
    dm = LSUNBedroomDataModule(str(tmp_path / "data"), **kwargs)
    expected = (dm.train_images(), dm.test_images())

    def refuse(*args, **kwargs):
        raise RuntimeError("no decoder")

    monkeypatch.setattr(decode, "decode_image", refuse)
    pil = LSUNBedroomDataModule(str(tmp_path / "data_pil"), **kwargs)
    assert torch.equal(pil.train_images(), expected[0])
    assert torch.equal(pil.test_images(), expected[1])
