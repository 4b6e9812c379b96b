"""CIFAR-10: torchvision's pickled batches and the JPEG image-folder tarball, with labels."""

from __future__ import annotations

import io
import pickle
import tarfile
import time
from pathlib import Path

import pytest
import torch
from fixtures_data import (
    CIFAR_CLASSES,
    SHARED_CIFAR_TARBALL,
    cifar_class_for,
    serve_directory,
    sha256,
    write_cifar_pickles,
    write_jpeg_tarball,
)

from gan_lab.data import CIFAR10DataModule
from gan_lab.data import cifar10 as cifar_module
from gan_lab.data.verify import file_md5
from gan_lab.errors import UserError

FIXTURE_COUNTS = {"train": 24, "test": 8}


def offline(cls=CIFAR10DataModule, **kwargs) -> CIFAR10DataModule:
    return cls(download=False, registry=False, **kwargs)


@pytest.fixture()
def pickled(tmp_path: Path):
    """A mirror with tiny torchvision-format batches and a module that trusts their md5s."""
    mirror = tmp_path / "mirror"
    arrays, labels = write_cifar_pickles(mirror, per_batch=6)
    module_cls = trusting_module(mirror)
    return mirror, arrays, labels, module_cls


def trusting_module(mirror: Path) -> type[CIFAR10DataModule]:
    """CIFAR10DataModule whose torchvision class trusts the md5s of ``mirror``'s batches."""
    fixture_cls = cifar_class_for(mirror / "cifar-10-batches-py")
    return type("FixtureCIFAR10DataModule", (CIFAR10DataModule,),
                {"torchvision_class": fixture_cls})  # fmt: skip


@pytest.fixture()
def tarball(tmp_path: Path):
    """A mirror with a tiny JPEG tarball and a module that trusts its sha256 and counts."""
    mirror = tmp_path / "jpeg-mirror"
    written, labels = write_jpeg_tarball(mirror / "cifar10-jpeg.tar.gz", FIXTURE_COUNTS)
    return mirror, written, labels, trusting_tarball_module(mirror, FIXTURE_COUNTS)


def trusting_tarball_module(mirror: Path, counts: dict[str, int]) -> type[CIFAR10DataModule]:
    """CIFAR10DataModule that trusts the sha256 and counts of ``mirror``'s tarball."""
    sha = sha256(mirror / "cifar10-jpeg.tar.gz")
    return type("FixtureJpegCIFAR10DataModule", (CIFAR10DataModule,),
                {"jpeg_sha256": sha, "jpeg_counts": counts})  # fmt: skip


def test_pickled_batches_decode_to_exact_pixels_and_labels(pickled, tmp_path):
    mirror, arrays, labels, module_cls = pickled
    dm = offline(module_cls, data_dir=str(tmp_path / "data"), mirrors=[str(mirror)], batch_size=8)
    dm.setup()
    assert dm.train_images().shape == (30, 3, 32, 32) and dm.train_images().dtype == torch.uint8
    assert torch.equal(dm.train_images(), torch.from_numpy(arrays["train"]))
    assert torch.equal(dm.test_images(), torch.from_numpy(arrays["test"]))
    assert next(iter(dm.train_dataloader())).shape == (8, 3, 32, 32)
    assert dm.num_classes == 10
    assert dm.train_labels().dtype == torch.int64
    assert dm.train_labels().tolist() == labels["train"]
    assert dm.test_labels().tolist() == labels["test"]


def test_out_of_range_pickled_label_is_named(tmp_path):
    mirror = tmp_path / "mirror"
    write_cifar_pickles(mirror, per_batch=4)
    batch = mirror / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(batch.read_bytes())
    entry["labels"][2] = 10
    batch.write_bytes(pickle.dumps(entry))
    dm = offline(trusting_module(mirror), data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    with pytest.raises(UserError) as info:
        dm.test_labels()
    message = str(info.value)
    assert f"CIFAR-10 file {batch.parent} is unusable: test label 10 at index 2" in message
    assert "\n" not in message


def test_corrupt_batch_fails_torchvisions_integrity_check(pickled, tmp_path):
    mirror, _, _, module_cls = pickled
    bad = mirror / "cifar-10-batches-py" / "data_batch_3"
    blob = bytearray(bad.read_bytes())
    blob[-20] ^= 0xFF
    bad.write_bytes(bytes(blob))
    dm = offline(module_cls, data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert f"CIFAR-10 file {bad} is unusable: fails torchvision's md5 integrity check" in message
    assert "\n" not in message and "data.download=true" in message


def test_official_md5s_reject_look_alike_batches(pickled, tmp_path):
    mirror, _, _, _ = pickled
    dm = offline(data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    with pytest.raises(UserError, match="data_batch_1 is unusable: fails torchvision's md5"):
        dm.prepare_data()


def test_incomplete_batches_folder_is_reported(pickled, tmp_path):
    mirror, _, _, module_cls = pickled
    (mirror / "cifar-10-batches-py" / "data_batch_5").unlink()
    dm = offline(module_cls, data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    assert "cifar-10-batches-py/ lacks data_batch_5" in str(info.value)
    assert "CIFAR-10 not found; tried:" in str(info.value)


def test_official_download_is_used_and_kept(tmp_path):
    """torchvision's download + extract of cifar-10-python.tar.gz, from a local server."""
    source = tmp_path / "source"
    arrays, labels = write_cifar_pickles(source, per_batch=4)
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    fixture_cls = cifar_class_for(source / "cifar-10-batches-py")
    data_dir = tmp_path / "data"
    with serve_directory(served) as url:
        fixture_cls.url = f"{url}cifar-10-python.tar.gz"
        fixture_cls.tgz_md5 = file_md5(served / "cifar-10-python.tar.gz")
        module_cls = type("Downloading", (CIFAR10DataModule,), {"torchvision_class": fixture_cls})
        dm = module_cls(data_dir=str(data_dir), batch_size=4)
        dm.setup()
    assert torch.equal(dm.test_images(), torch.from_numpy(arrays["test"]))
    assert dm.train_labels().tolist() == labels["train"]
    assert dm.cache().read_meta()["origin"].startswith("download ")
    assert (data_dir / "cifar-10-batches-py" / "data_batch_5").is_file()  # kept for next time
    assert not list(data_dir.glob(".prepare-*"))


def test_jpeg_tarball_decodes_in_name_order(tarball, tmp_path):
    mirror, written, labels, module_cls = tarball
    dm = offline(module_cls, data_dir=str(tmp_path / "data"), mirrors=[str(mirror)], batch_size=8)
    dm.setup()
    train, test = dm.train_images(), dm.test_images()
    assert train.shape == (24, 3, 32, 32) and test.shape == (8, 3, 32, 32)
    # JPEG is lossy: close to the originals, in the same (sorted-name) order.
    for got, want in ((train, written["train"]), (test, written["test"])):
        error = (got.float() - want.float()).abs().mean(dim=(1, 2, 3))
        assert error.max().item() < 3.0
    # Labels from the class folders, in torchvision's class order, aligned with the images.
    assert dm.train_labels().dtype == torch.int64
    assert torch.equal(dm.train_labels(), labels["train"])
    assert torch.equal(dm.test_labels(), labels["test"])
    assert dm.train_labels().unique().tolist() == list(range(10))


def test_tarball_jpeg_outside_a_class_folder_is_named(tmp_path):
    path = tmp_path / "mirror" / "cifar10-jpeg.tar.gz"
    path.parent.mkdir()
    blob = b"never decoded: class folders are checked before any JPEG is"
    with tarfile.open(path, "w:gz") as tf:
        for name in ("train/cat/0000.jpg", "test/lion/0000.jpg"):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    counts = {"train": 1, "test": 1}
    dm = offline(
        trusting_tarball_module(path.parent, counts),
        data_dir=str(tmp_path / "data"),
        mirrors=[str(path.parent)],
    )
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert f"CIFAR-10 file {path} is unusable: test/lion/0000.jpg is in folder 'lion'" in message
    assert ", ".join(CIFAR_CLASSES) in message and "\n" not in message


def test_tarball_sha256_is_checked(tarball, tmp_path):
    mirror, _, _, _ = tarball
    dm = offline(data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert f"CIFAR-10 file {mirror / 'cifar10-jpeg.tar.gz'} is unusable: sha256 is" in message
    assert CIFAR10DataModule.jpeg_sha256 in message and "\n" not in message


def test_rerun_does_not_rehash_the_tarball(tarball, tmp_path, monkeypatch):
    mirror, _, _, module_cls = tarball
    offline(module_cls, data_dir=str(tmp_path / "data"), mirrors=[str(mirror)]).prepare_data()

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(cifar_module, "file_sha256", no_hashing)
    dm = offline(module_cls, data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    dm.setup()
    assert len(dm.train_images()) == 24 and len(dm.train_labels()) == 24


def test_tarball_source_change_invalidates_cache(tarball, tmp_path):
    mirror, _, _, module_cls = tarball
    data_dir = str(tmp_path / "data")
    offline(module_cls, data_dir=data_dir, mirrors=[str(mirror)]).setup()
    counts = {"train": 12, "test": 4}
    _, labels = write_jpeg_tarball(mirror / "cifar10-jpeg.tar.gz", counts)
    changed = trusting_tarball_module(mirror, counts)
    dm = offline(changed, data_dir=data_dir, mirrors=[str(mirror)], batch_size=4)
    dm.setup()
    assert len(dm.train_images()) == 12 and len(dm.test_images()) == 4
    assert torch.equal(dm.test_labels(), labels["test"])


def test_resized_grayscale_variant(tarball, tmp_path):
    mirror, _, _, module_cls = tarball
    dm = offline(
        module_cls,
        data_dir=str(tmp_path / "data"),
        mirrors=[str(mirror)],
        image_size=16,
        channels=1,
        batch_size=4,
    )
    assert next(iter(dm.train_dataloader())).shape == (4, 1, 16, 16)


def test_pickles_preferred_over_tarball_in_one_folder(pickled, tmp_path):
    mirror, arrays, _, module_cls = pickled
    (mirror / "cifar10-jpeg.tar.gz").write_bytes(b"not even a tarball")
    dm = offline(module_cls, data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    dm.setup()
    assert torch.equal(dm.test_images(), torch.from_numpy(arrays["test"]))


@pytest.mark.slow
@pytest.mark.skipif(
    not SHARED_CIFAR_TARBALL.is_file(), reason=f"real CIFAR-10 {SHARED_CIFAR_TARBALL} is absent"
)
def test_real_cifar10_jpeg_tarball(tmp_path):
    dm = offline(data_dir=str(tmp_path), mirrors=str(SHARED_CIFAR_TARBALL.parent))
    start = time.perf_counter()
    dm.prepare_data()
    took = time.perf_counter() - start
    print(f"CIFAR-10 JPEG tarball verified + decoded + cached in {took:.1f} s")
    dm.setup()
    train, test = dm.train_images(), dm.test_images()
    assert train.shape == (50000, 3, 32, 32) and test.shape == (10000, 3, 32, 32)
    assert train.dtype == torch.uint8
    mean = train.float().mean(dim=(0, 2, 3)) / 255
    # CIFAR-10's well-known channel means (0.491, 0.482, 0.447); JPEG shifts them slightly.
    assert torch.allclose(mean, torch.tensor([0.491, 0.482, 0.447]), atol=0.01)
    labels = dm.train_labels()
    assert torch.bincount(labels).tolist() == [5000] * 10
    assert torch.bincount(dm.test_labels()).tolist() == [1000] * 10
    # Sorted by member name, so class folders come in order: airplane first, truck last.
    assert labels[0].item() == 0 and labels[-1].item() == 9
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert batch.shape == (128, 3, 32, 32) and batch.min() >= -1 and batch.max() <= 1
