"""A few real training steps through GANModule for every datamodule, in-process.

MNIST and CIFAR-10 are the real data from the shared mirror; Fashion-MNIST is a fixture in
its real on-disk format (gzipped IDX files); the image folder is a folder of PNG files. Each
is read by its real loader and trained on by the real ``gan_lab.gan.fit.fit``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, compose_config
from fixtures_data import save_image, write_idx_folder

from gan_lab.gan.fit import fit


def _fit(overrides: list[str], tmp_path: Path) -> dict:
    run_dir = tmp_path / "run"
    cfg = compose_config(
        ["logger=none", "metrics=none", "trainer=cpu", "trainer.max_steps=3",
         "trainer.enable_progress_bar=false", "data.batch_size=16", *overrides],
        run_dir,
    )  # fmt: skip
    fit(cfg, run_dir)
    return json.loads((run_dir / "summary.json").read_text())


def _check(summary: dict, run_dir: Path) -> None:
    assert summary["status"] == "completed"
    assert summary["generator_steps"] == 3
    assert summary["train_images"] == 3 * 16
    assert (run_dir / "samples" / "latest.png").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("data,model", [("mnist", "dcgan"), ("cifar10", "dcgan32")])
def test_real_datasets_train(data, model, tmp_path, session_data_dir):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    summary = _fit(
        [f"data={data}", f"model={model}", f"paths.data_dir={session_data_dir}",
         f"paths.data_mirrors={SHARED_DATA}"],
        tmp_path,
    )  # fmt: skip
    _check(summary, tmp_path / "run")


def test_fashion_mnist_fixture_trains(tmp_path):
    write_idx_folder(tmp_path / "mirror" / "fashion-mnist")
    summary = _fit(
        ["data=fashion_mnist", f"paths.data_dir={tmp_path}/data",
         f"paths.data_mirrors={tmp_path}/mirror", "data.registry=false", "data.download=false"],
        tmp_path,
    )  # fmt: skip
    _check(summary, tmp_path / "run")
    assert "mirror" in json.dumps(summary) or summary["status"] == "completed"


def test_image_folder_trains_at_64px(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(40):
        size = (48 + i, 80, 3)  # varied, non-square sizes: resized and center-cropped
        save_image(tmp_path / "imgs" / f"{i:03d}.png", rng.integers(0, 256, size, dtype=np.uint8))
    summary = _fit(
        ["data=folder", f"data.root={tmp_path}/imgs", "model=dcgan64",
         f"paths.data_dir={tmp_path}/data", "data.val_samples=4"],
        tmp_path,
    )  # fmt: skip
    _check(summary, tmp_path / "run")


@pytest.mark.slow
def test_num_samples_beyond_the_held_out_set_is_recorded(tmp_path, caplog, session_data_dir):
    """metrics.num_samples=20000 on MNIST (10,000 test images): 10,000 compared, and said so."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    run_dir = tmp_path / "run"
    cfg = compose_config(
        ["logger=none", "trainer=cpu", "trainer.max_steps=2", "trainer.enable_progress_bar=false",
         "data.batch_size=32", "metrics.num_samples=20000", f"paths.data_dir={session_data_dir}",
         f"paths.data_mirrors={SHARED_DATA}"],
        run_dir,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="gan_lab.metrics"):
        summary = fit(cfg, run_dir)
    protocol = summary["metrics_protocol"]
    assert protocol["num_samples"] == protocol["num_real"] == protocol["num_generated"] == 10_000
    assert protocol["num_samples_requested"] == 20_000 and protocol["label"] == "sound"
    warned = [r for r in caplog.records if "metrics.num_samples=20000" in r.getMessage()]
    assert len(warned) == 1 and "only 10000 images" in warned[0].getMessage()
    assert summary["metrics"]["fid_domain"] > 0


@pytest.mark.slow
def test_training_beats_the_untrained_generator(tmp_path, session_data_dir):
    """Domain FID after 400 generator steps is far below that of the untrained generator."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    common = [f"paths.data_dir={session_data_dir}", f"paths.data_mirrors={SHARED_DATA}",
              "metrics=default", "metrics.num_samples=1000", "data.batch_size=64"]  # fmt: skip
    fids = {}
    for steps in (0, 400):
        cfg = compose_config(
            ["logger=none", "trainer=cpu", f"trainer.max_steps={steps}",
             "trainer.enable_progress_bar=false", *common],
            tmp_path / str(steps),
        )  # fmt: skip
        fids[steps] = fit(cfg, tmp_path / str(steps))["metrics"]["fid_domain"]
    assert fids[400] < 0.5 * fids[0], fids


@pytest.mark.slow
@pytest.mark.network
def test_inception_metrics_at_validation_reach_logger_and_summary(tmp_path, session_data_dir):
    """metrics=inception: fid_inception (and domain) in the CSV logger and summary.json."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    from gan_lab.metrics.extractors.inception_weights import resolve_inception_weights

    has_logits = resolve_inception_weights().has_logits
    run_dir = tmp_path / "run"
    cfg = compose_config(
        ["logger=csv", "metrics=inception", "metrics.num_samples=64", "trainer=cpu",
         "trainer.max_steps=5", "trainer.enable_progress_bar=false", "data.batch_size=32",
         f"paths.data_dir={session_data_dir}", f"paths.data_mirrors={SHARED_DATA}"],
        run_dir,
    )  # fmt: skip
    summary = fit(cfg, run_dir)
    metrics = summary["metrics"]
    assert metrics["fid_inception"] > 0 and metrics["fid_domain"] > 0
    assert ("is_inception_mean" in metrics) == has_logits
    if not has_logits:
        assert "logits" in summary["metrics_protocol"]["unavailable"]["is_inception"]
    csv_text = (run_dir / "csv" / "metrics.csv").read_text()
    assert "val/fid_inception" in csv_text and "val/fid_domain" in csv_text
