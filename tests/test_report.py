"""``python -m gan_lab.report`` over a real (tiny) Hydra multirun, one job of which fails."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from conftest import run_train


@pytest.mark.slow
def test_report_over_a_tiny_sweep_with_a_failed_job(run_env, repo_root, tmp_path, shared_data):
    sweep = tmp_path / "sweep"
    proc = run_train(
        ["-m", "experiment=smoke", "logger=none", "trainer.max_steps=6", "metrics.num_samples=64",
         "metrics.prdc=true", "model.latent_dim=-1,16", "seed=0,1", f"hydra.sweep.dir={sweep}"],
        run_env, repo_root,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sweep.rglob("summary.json")]
    assert sorted(s["status"] for s in summaries) == ["completed"] * 2 + ["failed"] * 2
    failed = [s for s in summaries if s["status"] == "failed"]
    assert all("latent_dim" in s["error"] for s in failed)

    out = subprocess.run(
        [sys.executable, "-m", "gan_lab.report", str(sweep)],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    written = json.loads(out.stdout)
    report = sweep / "report"
    rows = list(csv.DictReader((report / "report.csv").read_text().splitlines()))
    by_setting = {r["setting"]: r for r in rows}
    assert by_setting["model.latent_dim=16"]["runs"] == "2"
    assert by_setting["model.latent_dim=-1"]["failed"] == "2"
    fids = [s["metrics"]["fid_domain"] for s in summaries if s["status"] == "completed"]
    mean = float(by_setting["model.latent_dim=16"]["fid_domain_mean"])
    assert mean == pytest.approx(sum(fids) / 2, rel=1e-6)
    md = (report / "report.md").read_text()
    assert "Failed runs:" in md and md.count("latent_dim=-1") >= 1
    # The four set metrics are columns like FID, with their plots and the precision-recall plane.
    header = md.splitlines()[0]
    for part in ("precision", "recall", "density", "coverage"):
        assert f" {part}_domain |" in header
        assert float(by_setting["model.latent_dim=16"][f"{part}_domain_mean"]) >= 0
    for name in ("fid_domain_by_setting.png", "fid_domain_by_step.png", "samples.png",
                 "recall_domain_by_setting.png", "precision_recall_domain.png"):  # fmt: skip
        assert (report / name).stat().st_size > 1000 and str(report / name) in written["files"]
    assert len(written["failed_runs"]) == 2


def test_report_of_a_folder_without_runs_is_one_line(run_env, repo_root, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "gan_lab.report", str(tmp_path)],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.strip().startswith("error: no summary.json under")


def test_eval_json_beside_a_summary_joins_the_table(tmp_path):
    """A run's gan_lab.eval result (eval.json in its directory) becomes eval_<metric> columns."""
    from gan_lab.gan.sweep import load_settings, metric_names, table_rows

    for i, (dim, seed, fid, eval_fid) in enumerate([(25, 0, 300.0, 290.0), (25, 1, 310.0, 300.0),
                                                     (50, 0, 200.0, 195.0)]):  # fmt: skip
        run = tmp_path / str(i)
        run.mkdir()
        summary = {"status": "completed", "overrides": [f"model.latent_dim={dim}", f"seed={seed}"],
                   "metrics": {"fid_domain": fid}}  # fmt: skip
        (run / "summary.json").write_text(json.dumps(summary))
        evaluation = {"metrics": {"fid_domain": eval_fid},
                      "metrics_protocol": {"num_samples": 10000, "label": "sound"}}  # fmt: skip
        if i != 2:
            (run / "eval.json").write_text(json.dumps(evaluation))
    settings = load_settings(tmp_path)
    assert metric_names(settings) == ["eval_fid_domain", "fid_domain"]
    rows = {r["setting"]: r for r in table_rows(settings, metric_names(settings))}
    assert rows["model.latent_dim=25"]["eval_fid_domain_mean"] == pytest.approx(295.0)
    assert rows["model.latent_dim=25"]["fid_domain_mean"] == pytest.approx(305.0)
    assert rows["model.latent_dim=50"]["fid_domain_mean"] == pytest.approx(200.0)
    assert (
        rows["model.latent_dim=50"]["eval_fid_domain_mean"]
        != rows["model.latent_dim=50"]["eval_fid_domain_mean"]
    )  # NaN: that run has no eval.json


def test_settings_sort_numbers_as_numbers():
    from gan_lab.gan.sweep import natural_key

    names = ["model.latent_dim=100", "model.latent_dim=25", "model.latent_dim=50"]
    assert sorted(names, key=natural_key) == [names[1], names[2], names[0]]


def test_tick_labels_name_one_key_on_the_axis_and_stack_several():
    from gan_lab.gan.report_plots import tick_labels

    assert tick_labels(["model.latent_dim=25", "model.latent_dim=50"]) == (
        ["25", "50"],
        "model.latent_dim",
    )
    labels, xlabel = tick_labels(["channels_last=false,precision=32-true", "channels_last=true"])
    assert labels == ["channels_last=false\nprecision=32-true", "channels_last=true"]
    assert xlabel is None
