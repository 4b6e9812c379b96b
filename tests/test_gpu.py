"""CUDA-only checks (marked ``gpu``; skipped without CUDA, so always on CI).

Run them on a GPU machine with ``pytest -m gpu``. They cover what a CPU cannot show: each
precision trains, no host synchronization happens inside a training step
(``torch.cuda.set_sync_debug_mode("error")`` turns one into an exception), the validation FID
on the GPU equals the CPU's for the same weights, and DDP through the nccl backend.
"""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from conftest import SHARED_DATA, compose_config, run_train
from hydra.utils import instantiate

import gan_lab.gan.fit as fit_module
from gan_lab.gan.fit import build_module

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
SMOKE = ["experiment=smoke", "trainer.enable_progress_bar=false"]


def _config(tmp_path, data_dir, overrides):
    return compose_config(
        [*SMOKE, f"paths.data_dir={data_dir}", f"paths.data_mirrors={SHARED_DATA}", *overrides],
        tmp_path,
    )


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed", "32-true"])
def test_smoke_run_in_each_precision(tmp_path, session_data_dir, precision):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    cfg = _config(tmp_path, session_data_dir, ["logger=csv", "trainer=gpu",
                                               f"trainer.precision={precision}"])  # fmt: skip
    summary = fit_module.fit(cfg, tmp_path)
    assert summary["status"] == "completed", summary
    assert summary["generator_steps"] == 20 and summary.get("skipped_steps", 0) == 0
    assert summary["metrics"]["fid_domain"] > 0


def test_precision_auto_on_this_gpu():
    major = torch.cuda.get_device_capability()[0]
    expected = "bf16-mixed" if major >= 8 else "16-mixed"
    assert fit_module.resolve_precision("auto", "gpu") == expected


class SyncsAreErrors(L.Callback):
    """Host syncs raise inside training batches, except at logging intervals (generator step 1
    and multiples of log_every_n_steps) and the last batch, where reading the device is the
    point."""

    def __init__(self, every: int, last: int) -> None:
        self.every, self.last, self.guarded = every, last, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        step = batch_idx + 1
        if step != 1 and step % self.every and step != self.last:
            torch.cuda.set_sync_debug_mode("error")
            self.guarded += 1

    def on_train_batch_end(self, *args):
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_no_host_sync_inside_training_steps(tmp_path, session_data_dir, monkeypatch, precision):
    guard = SyncsAreErrors(every=5, last=20)
    build_trainer = fit_module.build_trainer
    monkeypatch.setattr(
        fit_module, "build_trainer",
        lambda cfg, callbacks, loggers: build_trainer(cfg, [*callbacks, guard], loggers),
    )  # fmt: skip
    cfg = _config(tmp_path, session_data_dir, [
        "logger=csv", "trainer=gpu", f"trainer.precision={precision}", "metrics=none",
        "trainer.log_every_n_steps=5", "trainer.enable_progress_bar=true"])  # fmt: skip
    try:
        summary = fit_module.fit(cfg, tmp_path)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert summary["status"] == "completed", summary
    assert guard.guarded == 20 - 1 - 3 - 1  # steps 2-4, 6-9, 11-14, 16-19 ran guarded


def test_validation_fid_on_gpu_equals_cpu(tmp_path, session_data_dir):
    """One generator's weights, scored by the validation metrics on each device."""
    cfg = _config(tmp_path, session_data_dir, ["logger=none", "trainer=cpu"])
    assert fit_module.fit(cfg, tmp_path)["status"] == "completed"
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    results = {}
    for accelerator in ("cpu", "gpu"):
        datamodule = instantiate(cfg.data)
        module = build_module(cfg)
        module.load_state_dict(state)
        metrics = instantiate(cfg.metrics, datamodule=datamodule)
        trainer = L.Trainer(accelerator=accelerator, devices=1, precision="32-true", logger=False,
                            callbacks=[metrics], enable_progress_bar=False,
                            enable_model_summary=False)  # fmt: skip
        trainer.validate(module, datamodule=datamodule, verbose=False)
        results[accelerator] = metrics.last_results
    assert results["gpu"]["fid_domain"] == pytest.approx(results["cpu"]["fid_domain"], rel=1e-3)


def test_ddp_through_nccl_on_one_gpu(run_env, repo_root, tmp_path):
    run_dir = tmp_path / "ddp"
    args = [*SMOKE, "logger=csv", "trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=1",
            f"hydra.run.dir={run_dir}"]  # fmt: skip
    proc = run_train(args, run_env, repo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["generator_steps"] == 20
    assert "distributed_backend=nccl" in (run_dir / "train.log").read_text()
