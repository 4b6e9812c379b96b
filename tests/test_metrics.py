"""Validation metrics: the domain classifier, one-pass feeding of torchmetrics, real-stat cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore

from gan_lab.data import MNISTDataModule
from gan_lab.errors import UserError
from gan_lab.metrics.compute import cached_outputs, to_unit_images
from gan_lab.metrics.extractors import DomainExtractor
from gan_lab.metrics.extractors.domain import (
    DomainClassifier,
    classifier_path,
    ensure_classifier,
    load_classifier,
)
from gan_lab.metrics.prdc import prdc
from gan_lab.metrics.protocol import no_logits_reason
from gan_lab.metrics.validation import ValidationMetrics


@pytest.fixture(scope="session")
def mnist(shared_data: Path, session_data_dir: Path) -> MNISTDataModule:
    dm = MNISTDataModule(str(session_data_dir), mirrors=[str(shared_data)], val_samples=2000)
    dm.setup()
    return dm


@pytest.fixture(scope="session")
def mnist_classifier(mnist: MNISTDataModule) -> tuple[DomainClassifier, dict]:
    """The real MNIST classifier from the user cache, trained there once if missing (~1 min)."""
    return ensure_classifier(mnist)


@pytest.mark.slow
def test_mnist_classifier_meets_its_accuracy_floor(mnist, mnist_classifier):
    _, record = mnist_classifier
    assert record["test_accuracy"] >= mnist.domain_classifier.min_accuracy >= 0.99
    assert record["epochs"] == mnist.domain_classifier.epochs
    assert record["data_digest"] == mnist.data_digest()
    path = classifier_path("mnist", 28, 1)
    assert json.loads(path.with_suffix(".json").read_text())["test_accuracy"] == pytest.approx(
        record["test_accuracy"]
    )


@pytest.mark.slow
def test_domain_fid_and_is_rank_real_above_noise(mnist, mnist_classifier):
    extractor = DomainExtractor(mnist_classifier[0], "mnist", mnist_classifier[1])
    test = to_unit_images(mnist.test_images()[:2000])
    train = to_unit_images(mnist.train_images()[:2000])
    noise = torch.rand_like(test)

    def fid(a: torch.Tensor, b: torch.Tensor) -> float:
        m = FrechetInceptionDistance(_Features(extractor), reset_real_features=True)
        m.update(a, real=True)
        m.update(b, real=False)
        return float(m.compute())

    same, far = fid(test, train), fid(test, noise)
    assert same < 10 and far > 50 * same, (same, far)
    score = InceptionScore(_Logits(extractor), splits=10)
    score.update(test)
    real_is = float(score.compute()[0])
    score = InceptionScore(_Logits(extractor), splits=10)
    score.update(noise)
    assert real_is > 9.0 and float(score.compute()[0]) < 2.0


@pytest.mark.slow
def test_precision_recall_density_coverage_tell_collapse_from_noise(mnist, mnist_classifier):
    """The three sanity cases of the metrics, on real MNIST with the domain features (2000
    images here; the 10,000-image figures are in the README). Real vs real is not 1: with k=3
    two disjoint halves of the training set also give about 0.88, the metric's own ceiling on
    these features."""
    extractor = DomainExtractor(mnist_classifier[0], "mnist", mnist_classifier[1])
    labels = mnist.train_labels()
    sets = {
        "test": mnist.test_images()[:2000],
        "train": mnist.train_images()[:2000],
        "one class": mnist.train_images()[labels == 1][:2000],  # a generator of 1s only
        "noise": torch.randint(0, 256, (2000, 1, 28, 28), dtype=torch.uint8),
    }
    f = {k: extractor(to_unit_images(v))["features"] for k, v in sets.items()}
    same, collapsed, noise = (prdc(f["test"], f[k]) for k in ("train", "one class", "noise"))
    assert min(same.values()) > 0.83, same
    assert collapsed["precision"] > 0.85 and collapsed["density"] > 0.85, collapsed
    assert collapsed["recall"] < 0.2 and collapsed["coverage"] < 0.2, collapsed
    assert max(noise.values()) < 0.02, noise


class _Features(torch.nn.Module):
    def __init__(self, extractor: DomainExtractor) -> None:
        super().__init__()
        self.extractor = extractor
        self.num_features = extractor.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)["features"]


class _Logits(_Features):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)["logits"]


class _TinyExtractor(torch.nn.Module):
    """A fixed random projection with logits: enough to check how metrics are fed."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(3 * 8 * 8, 16, generator=g)
        self.head = torch.randn(16, 10, generator=g)
        self.has_logits, self.num_features, self.num_classes = True, 16, 10
        self.identity = "tiny-v1"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = x.expand(-1, 3, -1, -1).flatten(1) @ self.proj
        return {"features": f, "logits": f @ self.head}


def test_one_pass_feeding_equals_torchmetrics_with_the_extractor(tmp_path):
    """FID and IS fed precomputed outputs equal torchmetrics running the extractor itself."""
    ex = _TinyExtractor()
    g = torch.Generator().manual_seed(1)
    real_u8 = torch.randint(0, 256, (256, 1, 8, 8), dtype=torch.uint8, generator=g)
    fake = torch.rand(256, 1, 8, 8, generator=g) * 1.5 - 1  # another distribution
    vm = ValidationMetrics({"tiny": ex}, num_samples=256, stats_dir=tmp_path)
    outputs = vm.real_outputs("tiny", real_u8, torch.device("cpu"))
    fid_vm = next(m for _, n, _, m in vm.metrics if n == "fid_tiny")
    is_vm = next(m for _, n, _, m in vm.metrics if n == "is_tiny")
    fid_vm.update(outputs["features"], real=True)
    out = ex(to_unit_images(fake))
    fid_vm.update(out["features"], real=False)
    is_vm.update(out["logits"])

    ref = FrechetInceptionDistance(_Features(ex))
    ref.update(to_unit_images(real_u8), real=True)
    ref.update(to_unit_images(fake), real=False)
    got_fid = float(fid_vm.compute())
    assert got_fid > 1.0 and got_fid == pytest.approx(float(ref.compute()), rel=1e-6)
    torch.manual_seed(0)
    got = is_vm.compute()
    ref_is = InceptionScore(_Logits(ex), splits=10)
    ref_is.update(to_unit_images(fake))
    torch.manual_seed(0)
    assert float(got[0]) == pytest.approx(float(ref_is.compute()[0]), rel=1e-6)


def test_real_statistics_are_cached_by_content(tmp_path, monkeypatch):
    ex = _TinyExtractor()
    real = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8)
    vm = ValidationMetrics({"tiny": ex}, num_samples=32, stats_dir=tmp_path)
    first = vm.real_outputs("tiny", real, torch.device("cpu"))
    files = list(tmp_path.glob("tiny-32-*.pt"))
    assert len(files) == 1
    # A cache hit must not run the extractor at all.
    monkeypatch.setattr(ex, "forward", lambda x: pytest.fail("extractor ran on a cache hit"))
    again = vm.real_outputs("tiny", real, torch.device("cpu"))
    assert torch.equal(first["features"], again["features"])
    monkeypatch.undo()
    # Other images (one pixel changed) are another entry; a damaged entry is recomputed.
    changed = real.clone()
    changed[0, 0, 0, 0] ^= 1
    vm.real_outputs("tiny", changed, torch.device("cpu"))
    assert len(list(tmp_path.glob("tiny-32-*.pt"))) == 2
    files[0].write_bytes(b"garbage")
    assert torch.equal(vm.real_outputs("tiny", real, torch.device("cpu"))["features"],
                       first["features"])  # fmt: skip


def test_inception_score_without_logits_is_reported_unavailable(tmp_path):
    ex = _TinyExtractor()
    ex.has_logits = False
    vm = ValidationMetrics({"inception": ex}, num_samples=100, stats_dir=None)
    assert [n for _, n, _, _ in vm.metrics] == ["fid_inception"]
    assert vm.protocol()["label"] == "no images compared"  # nothing set up yet
    vm.setup(*_fake_trainer(torch.zeros(100, 1, 8, 8, dtype=torch.uint8)), "fit")
    protocol = vm.protocol()
    assert protocol["unavailable"] == {"is_inception": no_logits_reason()}
    assert protocol["label"].startswith("cheap") and protocol["monitor"] == "fid_inception"


def test_folder_data_has_no_domain_classifier(tmp_path):
    class Folder:
        name = "folder"

    with pytest.raises(UserError, match="no domain classifier for 'folder'"):
        ensure_classifier(Folder())


def test_stale_or_damaged_classifier_is_refused(tmp_path):
    path = tmp_path / "mnist-28px-1ch-v1.pt"
    with pytest.raises(UserError, match="no domain classifier"):
        load_classifier(path)
    path.write_bytes(b"junk")
    path.with_suffix(".json").write_text("{}")
    with pytest.raises(UserError, match="unreadable"):
        load_classifier(path)


def _domain_extractor(seed: int) -> DomainExtractor:
    torch.manual_seed(seed)
    net = DomainClassifier(channels=1, image_size=8)
    record = {"feature_dim": 128, "num_classes": 10, "arch_version": 1, "data_digest": "d" * 64}
    return DomainExtractor(net, "mnist", record)


def test_real_statistics_are_keyed_by_the_classifier_weights(tmp_path, monkeypatch):
    """Same dataset, version and data digest but other weights (a retrained classifier, or
    one trained elsewhere): another cache entry. The same weights in a new object: a hit."""
    real = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    first, other = _domain_extractor(0), _domain_extractor(1)
    assert first.weights_sha256 != other.weights_sha256 and first.identity != other.identity
    out_first = cached_outputs(first, real, tmp_path, "domain")
    cached_outputs(other, real, tmp_path, "domain")
    assert len(list(tmp_path.glob("domain-16-*.pt"))) == 2
    same = _domain_extractor(0)
    assert same.weights_sha256 == first.weights_sha256
    monkeypatch.setattr(same, "forward", lambda x: pytest.fail("extractor ran on a cache hit"))
    hit = cached_outputs(same, real, tmp_path, "domain")
    assert torch.equal(hit["features"], out_first["features"])
    assert len(list(tmp_path.glob("domain-16-*.pt"))) == 2


def _tiny_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 64, (n, 1, 8, 8), dtype=torch.uint8, generator=g)
    images[torch.arange(n), 0, labels % 8, labels // 2] = 255  # a class-dependent pixel
    return images, labels


def test_classifier_training_is_seeded_privately(tmp_path):
    """Same seed: bitwise the same classifier; the caller's global RNG stream is untouched."""
    from gan_lab.metrics.digest import state_dict_sha256
    from gan_lab.metrics.extractors.domain import train_classifier

    (x, y), (xt, yt) = _tiny_digits(256, 0), _tiny_digits(64, 1)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, rec_a = train_classifier("mnist", x, y, xt, yt, epochs=2, batch_size=32, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(999)  # another caller state must not change the result
    b, rec_b = train_classifier("mnist", x, y, xt, yt, epochs=2, batch_size=32, seed=0)
    assert state_dict_sha256(a) == state_dict_sha256(b)
    assert rec_a["test_accuracy"] == rec_b["test_accuracy"]
    c, _ = train_classifier("mnist", x, y, xt, yt, epochs=2, batch_size=32, seed=1)
    assert state_dict_sha256(c) != state_dict_sha256(a)


def test_classifier_file_is_one_unit(tmp_path):
    """Weights and record live in the .pt; a stale or missing JSON copy is rewritten from it,
    and weights that do not match their record's hash are refused."""
    from gan_lab.metrics.extractors.domain import save_classifier

    path = tmp_path / "mnist-8px-1ch-v2.pt"
    torch.manual_seed(0)
    model = DomainClassifier(1, 8)
    record = {"dataset": "mnist", "image_size": 8, "channels": 1, "num_classes": 10,
              "arch_version": 2, "feature_dim": 128, "data_digest": "abc"}  # fmt: skip
    saved = save_classifier(model, record, path)
    assert json.loads(path.with_suffix(".json").read_text()) == saved
    # A crash after the weights and before the JSON: the JSON holds an older record.
    path.with_suffix(".json").write_text(json.dumps({**saved, "test_accuracy": 0.1}))
    loaded, got = load_classifier(path, data_digest="abc")
    assert got == saved and json.loads(path.with_suffix(".json").read_text()) == saved
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
    path.with_suffix(".json").unlink()
    assert load_classifier(path)[1] == saved and path.with_suffix(".json").is_file()
    with pytest.raises(UserError, match="trained on other data"):
        load_classifier(path, data_digest="other")
    # Other weights under the old record: refused, never paired silently.
    other = DomainClassifier(1, 8).state_dict()
    torch.save({"state_dict": other, "record": saved}, path)
    with pytest.raises(UserError, match="damaged"):
        load_classifier(path)
    torch.save(model.state_dict(), path)  # the v1 layout: bare weights, record in the JSON
    with pytest.raises(UserError, match="old or unknown format"):
        load_classifier(path)


def _fake_trainer(real: torch.Tensor) -> tuple[SimpleNamespace, SimpleNamespace]:
    """The few Trainer / LightningModule attributes the callback reads."""
    datamodule = SimpleNamespace(val_images=lambda: real)
    trainer = SimpleNamespace(datamodule=datamodule, sanity_checking=False, is_global_zero=True)
    module = SimpleNamespace(device=torch.device("cpu"), generator_steps=7,
                             log=lambda *a, **k: None)  # fmt: skip
    return trainer, module


def test_protocol_records_the_counts_really_compared(caplog):
    """num_samples=20 asked, 6 held-out images, 4 generated (e.g. limit_val_batches): the
    protocol says 4 compared, warns once, labels it cheap, and KID's subset fits the data."""
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8, generator=g)
    vm = ValidationMetrics({"tiny": _TinyExtractor()}, num_samples=20, kid=True,
                           inception_score=True, is_splits=2, kid_subset_size=1000)  # fmt: skip
    trainer, module = _fake_trainer(real)
    with caplog.at_level(logging.WARNING, logger="gan_lab.metrics"):
        vm.setup(trainer, module, "fit")
        vm.setup(trainer, module, "validate")  # the final validation sets up again
    warnings = [r for r in caplog.records if "metrics.num_samples=20" in r.getMessage()]
    assert len(warnings) == 1 and "only 6 images" in warnings[0].getMessage()
    before = vm.protocol()
    assert (before["num_samples"], before["num_real"], before["kid_subset_size"]) == (6, 6, 6)
    vm.on_validation_epoch_start(trainer, module)
    vm.on_validation_batch_end(trainer, module, torch.rand(4, 1, 8, 8) * 2 - 1, None, 0)
    vm.on_validation_epoch_end(trainer, module)
    protocol = vm.protocol()
    assert protocol["num_samples"] == 4 and protocol["num_samples_requested"] == 20
    assert (protocol["num_real"], protocol["num_generated"]) == (6, 4)
    assert protocol["label"] == "cheap (4 < 10000)" and protocol["kid_subset_size"] == 4
    assert set(vm.last_results) == {"fid_tiny", "kid_tiny_mean", "kid_tiny_std", "is_tiny_mean",
                                    "is_tiny_std"}  # fmt: skip


def test_sound_label_needs_ten_thousand_compared_images():
    from gan_lab.metrics.protocol import SOUND_NUM_SAMPLES, label

    assert label(SOUND_NUM_SAMPLES) == "sound" and label(9_999).startswith("cheap")


def test_metric_names():
    from gan_lab.metrics.protocol import named_results, plan_metrics, result_names

    assert result_names("fid", "domain") == ("fid_domain",)
    assert result_names("kid", "inception") == ("kid_inception_mean", "kid_inception_std")
    assert named_results("is", None, (2.0, 0.5)) == {"is_mean": 2.0, "is_std": 0.5}  # gan_lab.fid
    assert plan_metrics("inception", False, fid=True, kid=True, inception_score=True) == (
        ["fid", "kid"], {"is_inception": no_logits_reason()})  # fmt: skip


@pytest.mark.parametrize(
    "held_out,kwargs,fragment",
    [
        (1, {}, "held-out set used for validation has 1 image(s), too few for FID"),
        (1, {"fid": False, "kid": True, "inception_score": False}, "too few for KID"),
        (5, {"is_splits": 10}, "generated set has 5 image(s), too few for IS over 10 splits"),
    ],
)
def test_held_out_set_too_small_for_a_metric_is_one_line(held_out, kwargs, fragment):
    real = torch.zeros(held_out, 1, 8, 8, dtype=torch.uint8)
    vm = ValidationMetrics({"tiny": _TinyExtractor()}, num_samples=100, **kwargs)
    with pytest.raises(UserError) as info:
        vm.setup(*_fake_trainer(real), "fit")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_auto_extractors_pick_domain_where_a_classifier_exists():
    """The datamodule classes carry their domain classifier settings; metrics name no dataset."""
    from gan_lab.data import (
        CIFAR10DataModule,
        FashionMNISTDataModule,
        ImageFolderDataModule,
        LSUNBedroomDataModule,
    )
    from gan_lab.metrics.extractors import resolve_extractors

    for datamodule, want in [(MNISTDataModule, "domain"), (FashionMNISTDataModule, "domain"),
                             (CIFAR10DataModule, "domain"), (ImageFolderDataModule, "inception"),
                             (LSUNBedroomDataModule, "inception"),
                             (SimpleNamespace(name="mnist"), "inception")]:  # fmt: skip
        assert resolve_extractors("auto", datamodule) == [want]
    assert resolve_extractors(["domain", "inception"]) == ["domain", "inception"]
    assert resolve_extractors("inception") == ["inception"]
    # The recipe and floors the classifiers were cached with (the cache key does not hold them).
    specs = {dm.name: dm.domain_classifier for dm in
             (MNISTDataModule, FashionMNISTDataModule, CIFAR10DataModule)}  # fmt: skip
    assert {k: (s.min_accuracy, s.epochs, s.hflip) for k, s in specs.items()} == {
        "mnist": (0.99, 3, False), "fashion_mnist": (0.90, 8, False), "cifar10": (0.65, 8, True)
    }  # fmt: skip


def test_evaluators_list_the_datasets_with_a_classifier():
    from gan_lab.commands.evaluators import with_classifier

    assert with_classifier() == ["cifar10", "fashion_mnist", "mnist"]
