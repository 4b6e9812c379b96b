"""``python -m gan_lab.eval``: a checkpoint scored with the final-evaluation protocol."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch
from conftest import REPO, SHARED_DATA, train_short_run

from gan_lab.errors import UserError
from gan_lab.gan.checkpoints import load_checkpoint, load_generator


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, session_data_dir):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    return train_short_run(tmp_path_factory.mktemp("run"), session_data_dir, steps=30)


def test_checkpoint_carries_config_and_generator(short_run):
    ckpt, config = load_checkpoint(str(short_run))
    assert config["model"]["latent_dim"] == 100 and config["data"]["image_size"] == 28
    generator, _, _ = load_generator(str(short_run / "checkpoints" / "last.ckpt"))
    with torch.no_grad():
        assert generator(torch.randn(3, 100)).shape == (3, 1, 28, 28)


def test_bad_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no checkpoint at"):
        load_checkpoint(str(tmp_path / "none.ckpt"))
    (tmp_path / "trunc.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(str(tmp_path / "trunc.ckpt"))
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(UserError, match="not a gan_lab checkpoint"):
        load_checkpoint(str(tmp_path / "other.ckpt"))


@pytest.mark.slow
def test_eval_cli_writes_json(short_run, run_env, repo_root, tmp_path):
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.eval", f"ckpt_path={short_run}",
         "metrics.num_samples=500", f"out={out}", f"hydra.run.dir={tmp_path}/evalrun"],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result == json.loads((tmp_path / "evalrun" / "eval.json").read_text())
    assert result["generator_steps"] == 30 and result["dataset"] == "mnist"
    assert result["metrics_protocol"]["num_samples"] == 500
    assert result["metrics_protocol"]["label"].startswith("cheap")
    assert result["metrics"]["fid_domain"] > 0 and result["metrics"]["is_domain_mean"] >= 1


def test_eval_cli_missing_checkpoint_is_one_line(run_env, repo_root, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.eval", f"ckpt_path={tmp_path}/nope.ckpt",
         f"hydra.run.dir={tmp_path}/evalrun"],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "no checkpoint at" in lines[0]


class _PoolExtractor(torch.nn.Module):
    """A cheap stand-in for Inception on a folder: 2x2 average-pooled colors."""

    has_logits, num_features, num_classes, identity = True, 12, 4, "pool-v1"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = torch.nn.functional.adaptive_avg_pool2d(x.expand(-1, 3, -1, -1), 2).flatten(1)
        return {"features": f, "logits": f[:, :4] * 10}


def _rows(images: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in images}


def test_eval_scores_fixed_held_out_images_that_training_never_used(tmp_path, monkeypatch):
    """The old bug: training on a folder with metrics.num_samples=10 held out 10 images and
    trained on the rest; gan_lab.eval (num_samples=10000) re-split the folder with a larger
    held-out set, so 10 of its 20 "held-out" images were training images. Now eval takes the
    fixed held-out set stored with the run, none of whose images training saw."""
    import numpy as np
    from conftest import compose_config
    from fixtures_data import save_image
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import gan_lab.gan.evaluate as gan_eval
    import gan_lab.metrics.build as metrics_build
    from gan_lab.gan.fit import fit

    root = tmp_path / "imgs"
    for i in range(200):  # distinct flat colors: image i has red value i
        color = np.array([i, (i * 7) % 256, 255 - i], np.uint8)
        save_image(root / f"{i:04d}.png", np.tile(color, (40, 40, 1)))
    monkeypatch.setattr(metrics_build, "build_extractor", lambda name, **kw: _PoolExtractor())
    monkeypatch.setattr(gan_eval, "build_extractor", lambda name, **kw: _PoolExtractor())
    run_dir = tmp_path / "run"
    cfg = compose_config(
        ["data=folder", f"data.root={root}", "model=dcgan32", "data.image_size=32",
         "data.batch_size=16", "metrics.extractors=[pool]", "metrics.num_samples=10",
         "trainer=cpu", "trainer.max_steps=2", "trainer.enable_progress_bar=false",
         "logger=none", f"paths.data_dir={tmp_path}/data"],
        run_dir,
    )  # fmt: skip
    summary = fit(cfg, run_dir)
    assert summary["status"] == "completed" and summary["metrics_protocol"]["num_samples"] == 10
    trained_on = _rows(instantiate(cfg.data).train_images())

    seen: list[torch.Tensor] = []
    real_outputs = gan_eval.cached_outputs

    def spy(extractor, real, *args, **kwargs):
        seen.append(real)
        return real_outputs(extractor, real, *args, **kwargs)

    monkeypatch.setattr(gan_eval, "cached_outputs", spy)
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        eval_cfg = compose("eval", overrides=[
            f"ckpt_path={run_dir}", "metrics.extractors=[pool]", "device=cpu",
            f"paths.data_dir={tmp_path}/data"])  # fmt: skip
    result = gan_eval.evaluate(eval_cfg)
    (real,) = seen
    assert len(real) == 20 and len(trained_on) == 180  # the whole fixed held-out set: a tenth
    assert not _rows(real) & trained_on
    protocol = result["metrics_protocol"]
    assert (protocol["num_samples"], protocol["num_samples_requested"]) == (20, 10_000)
    assert protocol["label"] == "cheap (20 < 10000)"
    trained_held_out = summary["metrics_protocol"]["held_out"]
    assert protocol["held_out"]["sha256"] == trained_held_out["sha256"]
    assert protocol["held_out"]["matches_training"] is True
    assert trained_held_out["images"] == 20 and trained_held_out["split"].startswith("fixed")


def test_held_out_check_flags_legacy_checkpoints_and_changed_data(tmp_path, caplog):
    from types import SimpleNamespace

    from gan_lab.gan.evaluate import check_held_out

    info = {"split": "fixed subset (...)", "images": 30, "sha256": "a" * 64}
    folder = SimpleNamespace(held_out_info=lambda: info, has_official_test_split=False)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    assert check_held_out(folder, {"split_seed": 0}, ckpt) == info  # no summary.json
    with caplog.at_level(logging.WARNING, logger="gan_lab.gan.evaluate"):
        legacy = check_held_out(folder, {"seed": 3}, ckpt)
    assert legacy["legacy_checkpoint"] and "predates the fixed held-out split" in caplog.text
    protocol = {"metrics_protocol": {"held_out": {"sha256": "b" * 64}}}
    (tmp_path / "run" / "summary.json").write_text(json.dumps(protocol))
    with caplog.at_level(logging.WARNING, logger="gan_lab.gan.evaluate"):
        changed = check_held_out(folder, {"split_seed": 0}, ckpt)
    assert changed["matches_training"] is False and "the data changed since" in caplog.text


class _FlatExtractor(_PoolExtractor):
    """Like Inception on converted registry weights: features, no logits (so no IS)."""

    has_logits, identity = False, "flat-v1"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": super().forward(x)["features"]}


def test_validation_and_eval_name_and_record_alike(tmp_path, monkeypatch):
    """The same metric settings give the same metric names, unavailable reasons and protocol
    record in a training run's summary.json (validation) and in gan_lab.eval's result: both
    build them in gan_lab.metrics.protocol. Only the monitor (training) and the latent seed
    (eval) are one side's own."""
    import numpy as np
    from conftest import compose_config
    from fixtures_data import save_image
    from hydra import compose, initialize_config_dir

    import gan_lab.gan.evaluate as gan_eval
    import gan_lab.metrics.build as metrics_build
    from gan_lab.gan.fit import fit
    from gan_lab.metrics.protocol import no_logits_reason

    root = tmp_path / "imgs"
    for i in range(100):
        save_image(root / f"{i:04d}.png", np.full((32, 32, 3), (i * 37) % 256, np.uint8))
    extractors = {"pool": _PoolExtractor, "flat": _FlatExtractor}
    for module in (metrics_build, gan_eval):
        monkeypatch.setattr(module, "build_extractor", lambda name, **kw: extractors[name]())
    settings = [
        "metrics.extractors=[pool,flat]",
        "metrics.num_samples=10",
        "metrics.kid=true",
        "metrics.kid_subset_size=8",
        "metrics.is_splits=2",
        "metrics.prdc=true",
        "metrics.pr_k=2",
        "metrics.dc_k=4",
        f"paths.data_dir={tmp_path}/d",
    ]
    run_dir = tmp_path / "run"
    cfg = compose_config(
        ["data=folder", f"data.root={root}", "model=dcgan32", "data.image_size=32",
         "data.batch_size=16", "trainer=cpu", "trainer.max_steps=1",
         "trainer.enable_progress_bar=false", "logger=none", *settings],
        run_dir,
    )  # fmt: skip
    summary = fit(cfg, run_dir)
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        eval_cfg = compose("eval", overrides=[f"ckpt_path={run_dir}", "device=cpu", *settings])
    result = gan_eval.evaluate(eval_cfg)

    names = {"fid_pool", "kid_pool_mean", "kid_pool_std", "is_pool_mean", "is_pool_std",
             "fid_flat", "kid_flat_mean", "kid_flat_std"}  # fmt: skip
    names |= {f"{part}_{ex}" for part in ("precision", "recall", "density", "coverage")
              for ex in ("pool", "flat")}  # fmt: skip
    assert set(summary["metrics"]) == set(result["metrics"]) == names
    trained, evaluated = summary["metrics_protocol"], result["metrics_protocol"]
    assert trained.pop("monitor") == "fid_pool" and evaluated.pop("seed") == 0
    assert trained.pop("held_out")["sha256"] == evaluated.pop("held_out")["sha256"]
    assert trained == evaluated
    assert evaluated["unavailable"] == {"is_flat": no_logits_reason()}
    assert evaluated["extractors"] == {"pool": "pool-v1", "flat": "flat-v1"}
    assert (evaluated["num_samples"], evaluated["kid_subset_size"]) == (10, 8)
    assert evaluated["prdc_k"] == {"precision_recall": 2, "density_coverage": 4}
