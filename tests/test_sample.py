"""gan_lab.sample: a grid and a latent interpolation grid from a checkpoint, on CPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import train_short_run
from PIL import Image

from gan_lab.commands.sample import slerp


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, session_data_dir):
    return train_short_run(tmp_path_factory.mktemp("run"), session_data_dir, steps=5)


def _sample(args, cwd):
    return subprocess.run([sys.executable, "-m", "gan_lab.sample", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_sample_writes_grid_and_interpolation(short_run, tmp_path):
    out = tmp_path / "grid.png"
    proc = _sample([f"ckpt_path={short_run}", "n=16", f"out={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"grid: {out}" in proc.stdout
    grid = Image.open(out)
    assert grid.size == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2)  # 4x4 MNIST images, padding 2
    interp = Image.open(tmp_path / "grid_interpolation.png")
    assert interp.size == (10 * 28 + 11 * 2, 8 * 28 + 9 * 2)  # 8 rows of 10 steps
    # Same seed, same images; another seed, other images.
    again = tmp_path / "again.png"
    _sample([f"ckpt_path={short_run}", "n=16", f"out={again}", "interpolation_out=none"],
            tmp_path)  # fmt: skip
    assert again.read_bytes() == out.read_bytes()
    assert not (tmp_path / "again_interpolation.png").exists()
    other = tmp_path / "other.png"
    _sample([f"ckpt_path={short_run}", "n=16", f"out={other}", "seed=1"], tmp_path)
    assert other.read_bytes() != out.read_bytes()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["ckpt_path=/nonexistent"], "no checkpoint at /nonexistent"),
     ([], "ckpt_path"),
     (["ckpt_path=.", "n=0"], "n must be a positive integer"),
     (["ckpt_path=.", "colour=red"], "bad arguments")],
)  # fmt: skip
def test_bad_sample_arguments_are_one_line(args, fragment, tmp_path):
    proc = _sample(args, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr


def test_slerp_keeps_endpoints_and_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 100, generator=g), torch.randn(3, 100, generator=g)
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert torch.allclose(path[:, 0], a, atol=1e-5) and torch.allclose(path[:, -1], b, atol=1e-5)
    # Midpoints keep roughly the endpoints' norm (a straight line would shrink to ~0.71x).
    assert (path[:, 2].norm(dim=1) / a.norm(dim=1)).min() > 0.9
