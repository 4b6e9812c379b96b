"""notebooks/gan_lab.ipynb runs cleanly (nbclient) on a tiny sweep and a tiny run."""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import REPO, SHARED_DATA, run_train, train_short_run
from nbclient import NotebookClient


@pytest.mark.slow
def test_notebook_executes(tmp_path, session_data_dir, run_env, monkeypatch):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("no shared data mirror")
    run_dir = train_short_run(tmp_path / "run", session_data_dir)
    sweep = tmp_path / "sweep"
    proc = run_train(
        ["-m", "experiment=smoke", "logger=none", "trainer.max_steps=6", "metrics.num_samples=64",
         "model.latent_dim=8,16", "seed=0,1", f"hydra.sweep.dir={sweep}"],
        run_env, REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    monkeypatch.setenv("GAN_LAB_NB_SWEEP", str(sweep))
    monkeypatch.setenv("GAN_LAB_DATA_DIR", str(session_data_dir))
    monkeypatch.setenv("GAN_LAB_DATA_MIRRORS", str(SHARED_DATA))
    monkeypatch.setenv("GAN_LAB_NB_CKPTS", json.dumps({"tiny run": str(run_dir)}))
    monkeypatch.setenv("GAN_LAB_NB_SIZES", "100,300")
    monkeypatch.setenv("GAN_LAB_NB_DRAWS", "2")
    nb = nbformat.read(REPO / "notebooks" / "gan_lab.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO)}}).execute()  # fmt: skip
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps([o.get("data", o.get("text", "")) for o in outputs])
    assert "tiny run" in text and "uniform noise" in text and "| 300 |" in text
    assert "model.latent_dim=16" in text and "image/png" in text  # the sweep's table and plots
    assert "precision_domain" in text  # the four set metrics reach the table (default on)
