"""InMemoryImageDataModule: arguments, source order, cache, loaders and the [-1, 1] hook."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from gan_lab.data import InMemoryImageDataModule, TensorImageDataset, fit_images
from gan_lab.data.cache import CACHE_FORMAT
from gan_lab.data.dataset import passthrough_collate
from gan_lab.data.sources import Loaded, Source, parse_mirrors
from gan_lab.errors import UserError


class TensorFileDataModule(InMemoryImageDataModule):
    """A minimal subclass: a root holding ``images.pt`` ({"train", "test"} -> uint8 NCHW).

    It exercises the base class alone (source order, cache, loaders); the dataset modules
    have their own tests on their real formats.
    """

    name = "tensorfile"
    title = "tensor file"
    loads = 0

    def find_local(self, root: Path, kind: str) -> Source | str:
        path = root / "images.pt"
        if not path.is_file():
            return "no images.pt"
        return Source(kind=kind, location=path, files={"images": path})

    def load_source(self, source: Source, scratch: Path) -> Loaded:
        type(self).loads += 1
        images = torch.load(source.files["images"], weights_only=True)
        digest = str(int(sum(x.sum() for x in images.values())))
        return Loaded(digest=digest, images=images)


class LabelledTensorFileDataModule(TensorFileDataModule):
    """The same, with labels: each image's label is its first pixel mod 3."""

    name = "labelled"
    num_classes = 3

    def load_source(self, source: Source, scratch: Path) -> Loaded:
        loaded = super().load_source(source, scratch)
        loaded.labels = {k: v[:, 0, 0, 0].long() % 3 for k, v in loaded.images.items()}
        return loaded


def write_tensor_file(root: Path, n_train: int = 300, n_test: int = 50, value: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    images = {
        "train": torch.arange(n_train, dtype=torch.int64).remainder(256).to(torch.uint8),
        "test": torch.full((n_test,), value, dtype=torch.uint8),
    }
    images = {k: v.view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous() for k, v in images.items()}
    path = root / "images.pt"
    torch.save(images, path)
    return path


@pytest.fixture()
def module_factory(tmp_path: Path):
    mirror = tmp_path / "mirror"
    write_tensor_file(mirror)
    TensorFileDataModule.loads = 0

    def make(**kwargs) -> TensorFileDataModule:
        args = dict(data_dir=str(tmp_path / "data"), mirrors=[str(mirror)], image_size=4)
        args.update(kwargs)
        return TensorFileDataModule(**args)

    return make


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("channels", 2, "data.channels must be 1 (grayscale) or 3 (RGB), got 2"),
        ("batch_size", 0, "data.batch_size must be a positive integer, got 0"),
        ("image_size", -8, "data.image_size must be a positive integer"),
        ("image_size", "64", "data.image_size must be a positive integer, got '64'"),
        ("batch_size", True, "data.batch_size must be a positive integer, got True"),
        ("val_samples", -1, "data.val_samples must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_one_line_user_errors(tmp_path, key, value, needle):
    with pytest.raises(UserError) as info:
        TensorFileDataModule(data_dir=str(tmp_path), **{key: value})
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_attributes_are_usable_before_setup(module_factory):
    dm = module_factory(batch_size=32, image_size=8, channels=3)
    assert (dm.batch_size, dm.image_size, dm.channels) == (32, 8, 3)
    assert not (Path(dm.data_dir) / "cache").exists()  # nothing read or written yet


def test_mirrors_from_env_string_or_list(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert parse_mirrors(f"{a}{os.pathsep}{os.pathsep}{b}{os.pathsep}") == [a, b]
    assert parse_mirrors([str(a), "", str(b)]) == [a, b]
    assert parse_mirrors("") == [] and parse_mirrors(None) == []


def test_nonexistent_mirrors_are_skipped_and_reported(module_factory, tmp_path):
    missing = tmp_path / "nowhere"
    good = tmp_path / "mirror"
    dm = module_factory(mirrors=f"{missing}{os.pathsep}{good}")
    dm.prepare_data()  # found in the second mirror
    assert dm.cache().read_meta()["origin"] == f"mirror {good / 'images.pt'}"

    dm = module_factory(mirrors=str(missing), data_dir=str(tmp_path / "other"))
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert f"mirror {missing} (no such folder)" in message
    assert "data_dir" in message and "\n" not in message


def test_data_dir_wins_over_mirrors(module_factory, tmp_path):
    write_tensor_file(tmp_path / "data", value=7)
    dm = module_factory()
    dm.setup()
    assert dm.test_images().unique().tolist() == [7]


def test_cache_reused_revalidated_and_invalidated(module_factory, tmp_path):
    source = tmp_path / "mirror" / "images.pt"
    dm = module_factory()
    dm.prepare_data()
    assert TensorFileDataModule.loads == 1
    cache_file = dm.cache().tensor_path("test")
    mtime = cache_file.stat().st_mtime_ns

    module_factory().prepare_data()  # same file: stat signature matches, nothing is read
    assert TensorFileDataModule.loads == 1

    os.utime(source, ns=(1, 1))  # same content, new mtime: checksum again, keep the cache
    module_factory().prepare_data()
    assert TensorFileDataModule.loads == 2
    assert cache_file.stat().st_mtime_ns == mtime

    write_tensor_file(tmp_path / "mirror", value=9)  # new content: verify, decode, rewrite
    dm = module_factory()
    dm.setup()  # used without a Trainer, setup runs prepare_data's checks itself
    assert TensorFileDataModule.loads == 4
    assert dm.test_images().unique().tolist() == [9]


def test_cache_alone_is_enough_when_the_source_is_gone(module_factory, tmp_path):
    module_factory().prepare_data()
    (tmp_path / "mirror" / "images.pt").unlink()
    dm = module_factory(download=False, registry=False)
    dm.setup()
    assert len(dm.train_images()) == 300


def test_truncated_cache_file_is_rebuilt_not_trusted(module_factory):
    dm = module_factory()
    dm.prepare_data()
    path = dm.cache().tensor_path("train")
    path.write_bytes(path.read_bytes()[:100])
    dm = module_factory()
    dm.setup()  # the size recorded beside the cache no longer matches: decoded again
    assert TensorFileDataModule.loads == 2
    assert len(dm.train_images()) == 300


def test_labels_are_cached_beside_the_images(tmp_path):
    write_tensor_file(tmp_path / "mirror")
    args = dict(data_dir=str(tmp_path / "data"), mirrors=[str(tmp_path / "mirror")], image_size=4)
    LabelledTensorFileDataModule.loads = 0
    dm = LabelledTensorFileDataModule(**args)
    labels = dm.train_labels()
    assert labels.dtype == torch.int64 and labels.shape == (300,)
    assert torch.equal(labels, dm.train_images()[:, 0, 0, 0].long() % 3)
    assert dm.test_labels().tolist() == [0] * 50
    meta = dm.cache().read_meta()
    assert meta["format"] == CACHE_FORMAT
    assert meta["splits"]["train"]["labels_bytes"] == dm.cache().labels_path("train").stat().st_size

    again = LabelledTensorFileDataModule(**args)
    assert torch.equal(again.train_labels(), labels)
    assert LabelledTensorFileDataModule.loads == 1  # served from the cache

    path = dm.cache().labels_path("train")
    path.write_bytes(path.read_bytes()[:50])  # damaged: the size check rebuilds it
    assert torch.equal(LabelledTensorFileDataModule(**args).train_labels(), labels)
    assert LabelledTensorFileDataModule.loads == 2


def test_cache_of_an_older_format_is_rebuilt(module_factory):
    dm = module_factory()
    dm.prepare_data()
    cache = dm.cache()
    cache.write_meta({**cache.read_meta(), "format": CACHE_FORMAT - 1})
    assert cache.read_meta() is None
    module_factory().prepare_data()
    assert TensorFileDataModule.loads == 2
    assert cache.read_meta()["format"] == CACHE_FORMAT


def test_unlabelled_datamodule_refuses_labels(module_factory):
    dm = module_factory()
    assert dm.num_classes is None
    with pytest.raises(UserError, match="^the tensor file has no class labels; a domain"):
        dm.test_labels()


def test_getitems_returns_one_stacked_batch():
    images = torch.arange(10 * 12, dtype=torch.uint8).view(10, 1, 3, 4)
    ds = TensorImageDataset(images)
    batch = ds.__getitems__([3, 1, 7])
    assert torch.equal(batch, images[[3, 1, 7]])
    assert passthrough_collate(batch) is batch
    assert torch.equal(ds[5], images[5])


def test_loaders_yield_uint8_batches(module_factory):
    dm = module_factory(batch_size=64, val_samples=40)
    dm.setup("fit")
    train = dm.train_dataloader()
    assert isinstance(train, DataLoader) and train.drop_last
    batches = list(train)
    assert len(batches) == 300 // 64
    assert all(b.shape == (64, 1, 4, 4) and b.dtype == torch.uint8 for b in batches)
    seen = torch.cat([b[:, 0, 0, 0] for b in batches])
    assert len(seen.unique()) > 1 and not torch.equal(seen, seen.sort().values)  # shuffled

    val = list(dm.val_dataloader())
    assert [len(b) for b in val] == [40]
    assert torch.equal(torch.cat(val), dm.test_images()[:40])


def test_worker_processes_get_the_same_batches(module_factory):
    dm = module_factory(batch_size=50, num_workers=1)
    batches = list(dm.val_dataloader())
    assert torch.equal(torch.cat(batches), dm.test_images())


def test_batch_size_larger_than_the_data_is_a_user_error(module_factory):
    dm = module_factory(batch_size=301)
    with pytest.raises(UserError, match="fewer than data.batch_size=301"):
        dm.train_dataloader()


def test_after_transfer_batches_are_float_in_minus_one_one(module_factory):
    dm = module_factory()
    batch = torch.tensor([0, 1, 127, 128, 254, 255], dtype=torch.uint8).view(1, 1, 2, 3)
    out = dm.on_after_batch_transfer(batch, 0)
    assert out.dtype == torch.float32
    assert out.min().item() == -1.0 and out.max().item() == 1.0
    assert torch.allclose(out, batch.float() / 127.5 - 1)
    floats = torch.zeros(2)
    assert dm.on_after_batch_transfer(floats, 0) is floats


def test_fit_images_resizes_crops_and_converts_channels():
    wide = torch.zeros((2, 3, 10, 20), dtype=torch.uint8)
    wide[..., 3:17] = 255  # the middle is white, the sides black
    out = fit_images(wide, 5, 1)
    assert out.shape == (2, 1, 5, 5) and out.dtype == torch.uint8
    assert out.min().item() >= 250  # the crop kept the middle: all white
    gray = torch.full((1, 1, 4, 4), 9, dtype=torch.uint8)
    rgb = fit_images(gray, 4, 3)
    assert rgb.shape == (1, 3, 4, 4) and rgb.unique().tolist() == [9]
    assert fit_images(gray, 4, 1) is gray  # nothing to do: no copy


class _Probe(L.LightningModule):
    """Records what Lightning hands training/validation steps."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[torch.dtype, tuple, float, float]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append((batch.dtype, tuple(batch.shape), batch.min().item(), batch.max().item()))
        return (self.weight * batch.mean()).sum()

    def validation_step(self, batch, batch_idx):
        self.seen.append((batch.dtype, tuple(batch.shape), batch.min().item(), batch.max().item()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_trainer_gets_float_batches(module_factory):
    dm = module_factory(batch_size=32, val_samples=16)
    probe = _Probe()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        limit_val_batches=1,
        val_check_interval=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(probe, datamodule=dm)
    shapes = [s[1] for s in probe.seen]
    assert (32, 1, 4, 4) in shapes and (16, 1, 4, 4) in shapes
    for dtype, _, low, high in probe.seen:
        assert dtype == torch.float32 and -1.0 <= low <= high <= 1.0
