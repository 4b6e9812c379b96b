"""ImageFolderDataModule: a folder of PNG/JPEG/BMP/WEBP files of any size."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import save_image

from gan_lab.data import ImageFolderDataModule
from gan_lab.errors import UserError


def striped(height: int, width: int) -> np.ndarray:
    """Blue in the middle, red at the sides: a center crop must keep only the blue."""
    a = np.zeros((height, width, 3), dtype=np.uint8)
    a[..., 0] = 255
    side = width // 8
    a[:, side : width - side] = (0, 0, 255)
    return a


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(12):  # nested folders, mixed formats and sizes
        sub = root / ("a" if i % 2 else "b/c")
        arr = rng.integers(0, 256, size=(20 + i, 30, 3), dtype=np.uint8)
        suffix = [".png", ".jpg", ".bmp", ".webp"][i % 4]
        save_image(sub / f"img{i:02d}{suffix}", arr)
    save_image(root / "wide.PNG", striped(20, 40))
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "a" / "._img01.jpg").write_bytes(b"macOS junk")  # skipped by name, not decoded
    (root / "notes.txt").write_text("ignored")
    return root


def make(root: Path, tmp_path: Path, **kwargs) -> ImageFolderDataModule:
    args = dict(root=str(root), data_dir=str(tmp_path / "data"), image_size=8, batch_size=4)
    args.update(kwargs)
    return ImageFolderDataModule(**args)


def test_folder_is_scanned_resized_and_cropped(folder, tmp_path, caplog):
    dm = make(folder, tmp_path, val_samples=2)
    with caplog.at_level(logging.WARNING, logger="gan_lab.data"):
        dm.setup()
    assert "skipped 1 unreadable file(s), e.g. " + str(folder / "broken.jpg") in caplog.text
    train, held_out = dm.train_images(), dm.test_images()
    assert len(train) + len(held_out) == 13 and len(held_out) == 1  # at most a tenth
    assert train.shape[1:] == (3, 8, 8) and train.dtype == torch.uint8
    meta = dm.cache().read_meta()
    assert (meta["found"], meta["skipped"], meta["splits"]["all"]["count"]) == (14, 1, 13)


def test_center_crop_keeps_the_middle(tmp_path):
    root = tmp_path / "one"
    save_image(root / "wide.png", striped(20, 40))
    save_image(root / "tall.png", striped(40, 20).transpose(1, 0, 2).copy())
    dm = make(root, tmp_path, batch_size=1, val_samples=0)
    images = dm.train_images()
    assert images.shape == (2, 3, 8, 8)
    wide = images[1]  # sorted by name: tall.png, wide.png
    assert wide[2].min() > 240 and wide[0].max() < 15  # all blue, no red (squashing: red)


def test_grayscale_and_deterministic_split(folder, tmp_path):
    a = make(folder, tmp_path, channels=1, split_seed=1, val_samples=5)
    b = make(folder, tmp_path, channels=1, split_seed=1, val_samples=5)
    c = make(folder, tmp_path, channels=1, split_seed=2, val_samples=5)
    assert a.train_images().shape[1] == 1
    assert torch.equal(a.test_images(), b.test_images())
    assert not torch.equal(a.test_images(), c.test_images())
    everything = torch.cat([a.train_images(), a.test_images()])
    assert len(everything) == 13 and len(torch.unique(everything, dim=0)) == 13


def test_new_file_invalidates_the_cache(folder, tmp_path):
    assert len(make(folder, tmp_path).train_images()) == 12
    save_image(folder / "new" / "extra.png", striped(10, 10))
    dm = make(folder, tmp_path)
    assert len(dm.train_images()) + len(dm.test_images()) == 14


def test_two_folders_keep_separate_caches(folder, tmp_path):
    other = tmp_path / "other"
    save_image(other / "x.png", striped(8, 8))
    save_image(other / "y.png", striped(8, 8))
    assert make(other, tmp_path, batch_size=1).cache_key != make(folder, tmp_path).cache_key
    assert len(make(other, tmp_path, batch_size=1).train_images()) == 2  # a tenth of 2: none
    assert len(make(folder, tmp_path).train_images()) == 12


def test_missing_or_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"tried: data.root .*missing \(no such folder\)"):
        make(tmp_path / "missing", tmp_path).prepare_data()
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match="no jpg/jpeg/png/bmp/webp files"):
        make(empty, tmp_path).prepare_data()


def test_only_unreadable_images_is_a_user_error(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(UserError) as info:
        make(root, tmp_path).prepare_data()
    assert "has no readable image (1 file(s) failed to decode" in str(info.value)
    assert "\n" not in str(info.value)


def test_folder_smaller_than_a_batch_is_a_user_error(folder, tmp_path):
    dm = make(folder, tmp_path, batch_size=64)
    with pytest.raises(UserError, match="lower data.batch_size"):
        dm.train_dataloader()


def test_root_is_required(tmp_path):
    with pytest.raises(UserError, match="data.root is empty"):
        ImageFolderDataModule(root="", data_dir=str(tmp_path))


def test_folder_has_no_labels(folder, tmp_path):
    dm = make(folder, tmp_path)
    assert dm.num_classes is None
    for get_labels in (dm.train_labels, dm.test_labels):
        with pytest.raises(UserError) as info:
            get_labels()
        assert str(info.value) == (
            "the image folder has no class labels; a domain classifier needs mnist, "
            "fashion_mnist or cifar10"
        )
    assert not (tmp_path / "data" / "cache").exists()  # refused before decoding anything
    assert len(dm.train_images()) == 12  # images are still served


def _rows(images: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in images}


def _distinct_folder(root: Path, n: int) -> Path:
    """n images that stay distinct after resizing to 8x8 (a different flat color each)."""
    for i in range(n):
        color = np.array([i % 256, (i * 7) % 256, 255 - i % 256], np.uint8)
        save_image(root / f"{i:04d}.png", np.tile(color, (12, 12, 1)))
    return root


def test_held_out_split_is_fixed_by_the_data_config_alone(tmp_path):
    """The held-out set depends on split_seed / held_out / held_out_fraction only: not on
    val_samples (metrics.num_samples) nor on the training seed (data.seed), and it is
    disjoint from the training images for every num_samples."""
    root = _distinct_folder(tmp_path / "imgs", 200)
    reference = make(root, tmp_path, val_samples=8)
    held_out, train = reference.test_images(), reference.train_images()
    assert len(held_out) == 20 and len(train) == 180  # a tenth of 200 (< held_out=10000)
    assert len(_rows(held_out) | _rows(train)) == 200
    for val_samples in (0, 1, 8, 20, 100, 10_000):
        for seed in (0, 3):
            dm = make(root, tmp_path, val_samples=val_samples, seed=seed)
            assert torch.equal(dm.test_images(), held_out)
            assert torch.equal(dm.train_images(), train)
            assert not _rows(dm.val_images()) & _rows(dm.train_images())
            assert torch.equal(dm.val_images(), held_out[:val_samples])
            assert dm.held_out_info() == reference.held_out_info()
    other = make(root, tmp_path, split_seed=1)
    assert not torch.equal(other.test_images(), held_out)
    assert other.held_out_info()["sha256"] != reference.held_out_info()["sha256"]
    assert len(make(root, tmp_path, held_out=5).test_images()) == 5
    assert len(make(root, tmp_path, held_out_fraction=0.25).test_images()) == 50


def test_held_out_order_is_random_so_any_prefix_is_a_random_subset(tmp_path):
    """Validation compares the first val_samples held-out images: they must not all come from
    the first files (e.g. the first class subfolder), so the held-out set is not file-sorted."""
    root = _distinct_folder(tmp_path / "imgs", 200)
    file_index = make(root, tmp_path, val_samples=10).val_images()[:, 0, 0, 0].tolist()
    assert file_index != sorted(file_index) and max(file_index) > 40


def test_bad_held_out_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="data.held_out_fraction must be a number in"):
        make(tmp_path, tmp_path, held_out_fraction=1.5)
    with pytest.raises(UserError, match="data.split_seed must be"):
        make(tmp_path, tmp_path, split_seed=-1)
    with pytest.raises(UserError, match="data.held_out must be"):
        make(tmp_path, tmp_path, held_out="many")
