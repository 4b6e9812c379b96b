"""A data_dir that cannot be written (a shared, read-only dataset folder) still trains when its
cache is current, and real statistics that cannot be cached are computed instead.

The tests run as root here, which writes through permission bits, so the refusal is made by
failing every write a read-only file system would fail (and by chmod as well when not root).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import save_image
from torch import nn

import gan_lab.data.cache as data_cache
import gan_lab.data.prepare as data_prepare
import gan_lab.metrics.compute as compute
from gan_lab.data import ImageFolderDataModule


def _refuse(*args, **kwargs):
    raise PermissionError(30, "Read-only file system")


def _make_read_only(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_prepare.tempfile, "TemporaryDirectory", _refuse)
    monkeypatch.setattr(data_cache, "atomic_write", _refuse)
    monkeypatch.setattr(compute, "atomic_write", _refuse)
    if os.geteuid() != 0:
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_a_read_only_data_dir_with_a_current_cache_is_used_as_is(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for i in range(40):
        save_image(tmp_path / "images" / f"{i:03d}.png", rng.integers(0, 255, (12, 12, 3),
                                                                      dtype=np.uint8))  # fmt: skip
    kwargs = {"root": str(tmp_path / "images"), "data_dir": str(tmp_path / "data"),
              "image_size": 8, "channels": 3, "batch_size": 4}  # fmt: skip
    prepared = ImageFolderDataModule(**kwargs)
    prepared.setup()  # writes the cache
    _make_read_only(tmp_path / "data", monkeypatch)
    again = ImageFolderDataModule(**kwargs)
    again.setup()
    assert torch.equal(again.train_images(), prepared.train_images())
    assert torch.equal(again.val_images(), prepared.val_images())


class _TinyExtractor(nn.Module):
    identity = "tiny-test-extractor"
    num_features = 3

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": images.flatten(1)[:, :3] * self.scale}


def test_real_statistics_that_cannot_be_cached_are_computed(tmp_path, monkeypatch, caplog):
    real = torch.randint(0, 255, (10, 1, 4, 4), dtype=torch.uint8)
    _make_read_only(tmp_path, monkeypatch)
    out = compute.cached_outputs(_TinyExtractor(), real, tmp_path / "stats", "tiny")
    expected = real.float().div(255).flatten(1)[:, :3]
    assert torch.allclose(out["features"], expected)
    assert "cannot cache real statistics" in caplog.text
    assert not (tmp_path / "stats").exists() or not any((tmp_path / "stats").iterdir())
