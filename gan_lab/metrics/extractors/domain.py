"""Domain evaluators: a small classifier per dataset, for FID / IS that mean something there.

Inception features were learnt on ImageNet photos and say little about 28x28 digits; they are
also slow on a CPU (about 7 images/s here). A classifier trained on the dataset itself gives
"domain FID" (Fréchet distance of its penultimate features) and "domain IS" (Inception Score of
its class probabilities), at thousands of images per second, so they can run at every
validation epoch.

A classifier is trained once per (dataset, image size, channels, data digest) by
``python -m gan_lab.evaluators train data=<name>`` (or on first use), and cached as
``<cache>/evaluators/<dataset>-<size>px-<C>ch-v<ARCH_VERSION>.pt``: one file holding its
weights and its record (held-out accuracy, the data digest it was trained on, the sha256 of
the weights). The JSON sidecar beside it is a copy of the record for people and
``gan_lab.evaluators list``, written after the weights and rewritten from them when it is
missing or disagrees, so a crash between the two writes cannot pair weights with another
record. A changed dataset retrains it.

Training is a pure function of its inputs and seed: shuffling and augmentation draw from a
private ``torch.Generator``, and weight initialisation and dropout (which can only use the
global generator) run inside ``torch.random.fork_rng``, so the caller's random stream is the
same whether the classifier was trained in this process (empty cache) or loaded (warm cache).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import UserError
from gan_lab.io import atomic_write, cache_dir
from gan_lab.metrics.digest import state_dict_sha256

log = logging.getLogger(__name__)

# Bump when the network or its training recipe changes: old cached classifiers are retrained.
# v2: private generator for shuffling/augmentation; weights and record saved in one file.
ARCH_VERSION = 2
FEATURE_DIM = 128


class DomainClassifier(nn.Module):
    """A small CNN: three conv blocks (16-32-64), a 128-d feature layer, class logits.

    Kept small on purpose (about 2 M multiply-adds per 28x28 image): it must train in a
    minute and evaluate thousands of images per second on a CPU.

    Takes images in [0, 1] (torchmetrics' ``normalize=True`` convention) with the dataset's
    channel count; 3-channel input to a 1-channel network is averaged to gray first, so the
    metric code may hand it RGB-expanded images.
    """

    def __init__(self, channels: int, image_size: int, num_classes: int = 10) -> None:
        super().__init__()
        self.channels = channels
        self.image_size = image_size

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(block(channels, 16), block(16, 32), block(32, 64))
        side = image_size // 8
        self.embed = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * side * side, FEATURE_DIM), nn.ReLU()
        )
        self.classify = nn.Linear(FEATURE_DIM, num_classes)
        self.num_classes = num_classes

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) == 3 and self.channels == 1:
            x = x.mean(dim=1, keepdim=True)
        return x.float() * 2.0 - 1.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate 128-d features of [0, 1] images."""
        return self.embed(self.body(self._prepare(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits of [0, 1] images."""
        return self.classify(self.features(x))


def evaluators_dir() -> Path:
    """``$GAN_LAB_CACHE/evaluators`` (default ``~/.cache/gan_lab/evaluators``)."""
    return cache_dir("evaluators")


def classifier_path(dataset: str, image_size: int, channels: int, root: Path | None = None) -> Path:
    root = root if root is not None else evaluators_dir()
    return root / f"{dataset}-{image_size}px-{channels}ch-v{ARCH_VERSION}.pt"


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0)


def _augment(x: torch.Tensor, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 px (and flips with ``hflip``): cheap, and worth ~0.3 % accuracy."""
    pad = F.pad(x, (2, 2, 2, 2), mode="replicate")
    i, j = torch.randint(0, 5, (2,), generator=generator).tolist()
    x = pad[:, :, i : i + x.size(2), j : j + x.size(3)]
    if hflip and torch.rand((), generator=generator) < 0.5:
        x = x.flip(3)
    return x


@torch.no_grad()
def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy on uint8 ``images`` [N, C, H, W]."""
    model.eval()
    correct = 0
    for start in range(0, len(images), 1000):
        logits = model(_to_unit(images[start : start + 1000]))
        correct += int((logits.argmax(1) == labels[start : start + 1000]).sum())
    return correct / len(images)


def train_classifier(
    dataset: str,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    epochs: int = 5,
    batch_size: int = 128,
    seed: int = 0,
    hflip: bool = False,
) -> tuple[DomainClassifier, dict[str, Any]]:
    """Train the domain classifier on uint8 images; returns it and its record (accuracy, ...).

    ``epochs`` and ``hflip`` (random horizontal flips) come from the dataset's
    ``domain_classifier`` settings. Deterministic for a given ``seed``, and leaves the caller's
    global random state untouched.
    """
    # Weight init and dropout can only draw from the global generator: seed it inside a fork,
    # which restores the caller's state afterwards. Everything else uses a private generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        _, channels, size, _ = train_images.shape
        num_classes = int(train_labels.max()) + 1
        model = DomainClassifier(channels, size, num_classes)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
        steps = epochs * (len(train_images) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
        start = time.perf_counter()
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train_images), generator=generator)
            for b in range(len(train_images) // batch_size):
                idx = order[b * batch_size : (b + 1) * batch_size]
                x = _augment(_to_unit(train_images[idx]), hflip, generator)
                loss = F.cross_entropy(model(x), train_labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            log.info("domain classifier %s: epoch %d/%d, loss %.4f",
                     dataset, epoch + 1, epochs, loss.item())  # fmt: skip
        acc = accuracy(model, test_images, test_labels)
        record = {
            "dataset": dataset,
            "image_size": size,
            "channels": channels,
            "num_classes": num_classes,
            "arch_version": ARCH_VERSION,
            "feature_dim": FEATURE_DIM,
            "epochs": epochs,
            "test_accuracy": round(acc, 5),
            "test_images": len(test_images),
            "train_seconds": round(time.perf_counter() - start, 1),
        }
        return model.eval(), record


def save_classifier(model: DomainClassifier, record: dict[str, Any], path: Path) -> dict:
    """Weights and record (with the weights' sha256) to ``path`` in one atomic write; then the
    record's JSON copy beside it. Returns the record as saved."""
    state = model.state_dict()
    record = {**record, "weights_sha256": state_dict_sha256(state)}
    atomic_write(path, lambda f: torch.save({"state_dict": state, "record": record}, f))
    _write_sidecar(path, record)
    return record


def _write_sidecar(path: Path, record: dict[str, Any]) -> None:
    blob = json.dumps(record, indent=1).encode()
    atomic_write(path.with_suffix(".json"), lambda f: f.write(blob))


def read_classifier_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, record) of a cached classifier, its weights checked against the sha256 in
    its record; UserError if absent, unreadable, of an old format, or damaged."""
    how = "train it with `python -m gan_lab.evaluators train data=<dataset>`"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no domain classifier at {path}; {how}") from None
    except Exception as err:
        raise UserError(
            f"domain classifier {path} is unreadable ({type(err).__name__}); delete it and {how}"
        ) from None
    if not (isinstance(blob, dict) and {"state_dict", "record"} <= blob.keys()):
        raise UserError(f"domain classifier {path} has an old or unknown format; {how}")
    state, record = blob["state_dict"], blob["record"]
    if record.get("weights_sha256") != state_dict_sha256(state):
        raise UserError(f"domain classifier {path} is damaged (weights hash mismatch); {how}")
    return state, record


def load_classifier(path: Path, data_digest: str | None = None) -> tuple[DomainClassifier, dict]:
    """A cached classifier; UserError if absent, unreadable, damaged, or trained on other data.

    The record comes from the weights file itself; a missing or disagreeing JSON copy is
    rewritten from it.
    """
    state, record = read_classifier_file(path)
    if data_digest is not None and record.get("data_digest") != data_digest:
        raise UserError(f"domain classifier {path} was trained on other data; retrain it")
    sidecar = path.with_suffix(".json")
    try:
        stale = json.loads(sidecar.read_text()) != record
    except (OSError, ValueError):
        stale = True
    if stale:
        log.info("rewriting %s from the record inside %s", sidecar.name, path.name)
        try:
            _write_sidecar(path, record)
        except OSError as err:  # the JSON is a copy for people: a read-only cache still works
            log.warning("could not rewrite %s: %s", sidecar, err)
    # Building the network draws initial weights from the global generator: not the caller's.
    with torch.random.fork_rng(devices=[]):
        model = DomainClassifier(record["channels"], record["image_size"], record["num_classes"])
    model.load_state_dict(state)
    return model.eval(), record


def classifier_spec(datamodule: Any) -> Any | None:
    """The datamodule's ``domain_classifier`` settings (``min_accuracy``, ``epochs``, ``hflip``;
    see gan_lab.data.classifier), or None when its dataset has no domain classifier."""
    return getattr(datamodule, "domain_classifier", None)


def ensure_classifier(datamodule: Any, root: Path | None = None) -> tuple[DomainClassifier, dict]:
    """The cached classifier for ``datamodule``'s dataset, trained now if missing or stale.

    ``datamodule`` is a gan_lab in-memory datamodule (``name``, ``image_size``, ``channels``,
    ``domain_classifier``, images and labels). Classifiers below the dataset's
    ``min_accuracy`` are refused: their features would make FID numbers nobody should trust.
    """
    name = datamodule.name
    spec = classifier_spec(datamodule)
    if spec is None:
        raise UserError(
            f"no domain classifier for {name!r} (it has no class labels); use "
            f"metrics.extractors=auto or [inception]"
        )
    digest = datamodule.data_digest()
    path = classifier_path(name, datamodule.image_size, datamodule.channels, root)
    if path.is_file():
        try:
            return load_classifier(path, digest)
        except UserError as err:
            log.info("%s; training it again", err)
    log.info("training the %s domain classifier once (cached in %s)", name, path)
    model, record = train_classifier(
        name, datamodule.train_images(), datamodule.train_labels(), datamodule.test_images(),
        datamodule.test_labels(), epochs=spec.epochs, hflip=spec.hflip)  # fmt: skip
    record["data_digest"] = digest
    floor = spec.min_accuracy
    if record["test_accuracy"] < floor or not math.isfinite(record["test_accuracy"]):
        raise UserError(
            f"the {name} domain classifier reached only {record['test_accuracy']:.4f} test "
            f"accuracy (< {floor}); its features would not make a trustworthy metric"
        )
    record = save_classifier(model, record, path)
    log.info("%s domain classifier: test accuracy %.4f", name, record["test_accuracy"])
    return model, record


class DomainExtractor(nn.Module):
    """A dataset's own classifier: 128-d penultimate features and class logits.

    Its identity names the architecture version and training-data digest, and the sha256 of
    the classifier's weights themselves (hashed once, here): a retrained classifier, or one
    trained on another machine, never reuses statistics cached with another one.
    """

    def __init__(self, classifier: nn.Module, dataset: str, record: dict[str, Any]) -> None:
        super().__init__()
        self.net = classifier.eval()
        self.has_logits = True
        self.name = "domain"
        self.num_features = record["feature_dim"]
        self.num_classes = record["num_classes"]
        self.record = record
        self.weights_sha256 = state_dict_sha256(classifier)
        self.identity = (
            f"domain-{dataset}-v{record['arch_version']}-{record['data_digest'][:12]}"
            f"-w{self.weights_sha256[:12]}"
        )

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.net.features(images)
        return {"features": features, "logits": self.net.classify(features)}
