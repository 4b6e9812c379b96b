"""Precision, recall, density and coverage: parity with their reference implementations, the
bounded blocks, the radii cache, and the progress stages.

The references: ``prdc.compute_prdc`` (Naeem et al.'s package, PyPI prdc 0.2) for all four, and
torch-fidelity 0.4's ``prc`` (Kynkäänniemi et al.'s precision and recall) on the same features.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from gan_lab.errors import UserError
from gan_lab.metrics.compute import cached_real_radii, prdc_score
from gan_lab.metrics.prdc import block_rows, knn_radii, prdc
from gan_lab.metrics.progress import Stage
from gan_lab.metrics.protocol import check_counts, named_results, result_names

prdc_ref = pytest.importorskip("prdc")


def _sets(n_real: int, n_fake: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussians, so that all four metrics land away from 0 and 1 (the shift
    shrinks with the dimension, as distances concentrate there)."""
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, dim))
    shift = (8 / dim) ** 0.5
    fake = rng.normal(loc=0.15 * shift, scale=1 + 0.1 * shift, size=(n_fake, dim))
    return real, fake


# N not divisible by the block size: memory_mb is set so that blocks hold a few dozen rows.
@pytest.mark.parametrize(
    ("n_real", "n_fake", "dim", "k"),
    [(200, 200, 8, 5), (1000, 777, 64, 5), (1537, 1201, 16, 3), (513, 2049, 2048, 5)],
)
def test_parity_with_prdc_package(n_real, n_fake, dim, k):
    real, fake = _sets(n_real, n_fake, dim)
    ref = prdc_ref.compute_prdc(real, fake, nearest_k=k)
    assert block_rows(max(n_real, n_fake), 0.5, torch.float64) not in (0, n_real, n_fake)
    ours = prdc(torch.from_numpy(real), torch.from_numpy(fake), pr_k=k, dc_k=k, memory_mb=0.5)
    diffs = {name: abs(float(ref[name]) - ours[name]) for name in ref}
    assert max(diffs.values()) < 1e-6, (ref, ours)
    assert min(ours.values()) > 0.02 and max(ours["precision"], ours["recall"]) < 0.999


def test_precision_recall_parity_with_torch_fidelity():
    from torch_fidelity.metric_prc import prc_features_to_metric

    real, fake = _sets(1500, 1100, 32, seed=1)
    real32, fake32 = torch.from_numpy(real).float(), torch.from_numpy(fake).float()
    ref = prc_features_to_metric(fake32, real32, prc_neighborhood=3, prc_batch_size=500,
                                 save_cpu_ram=True, verbose=False)  # fmt: skip
    ours = prdc(real32, fake32, memory_mb=0.3)  # k=3 by default, the published value
    assert ours["precision"] == pytest.approx(ref["precision"], abs=1e-6)
    assert ours["recall"] == pytest.approx(ref["recall"], abs=1e-6)


def test_blocks_change_nothing_and_stay_under_the_bound():
    real, fake = (torch.from_numpy(x) for x in _sets(900, 700, 24, seed=2))
    whole = prdc(real, fake, memory_mb=1024)
    for memory_mb in (0.01, 0.2, 3.0):
        assert prdc(real, fake, memory_mb=memory_mb) == whole
    # A block of rows x 900 float64 distances, and its temporaries, fits the bound.
    rows = block_rows(900, 0.2, torch.float64)
    assert rows * 900 * 8 * 3 <= 0.2 * 2**20 < (rows + 1) * 900 * 8 * 3
    assert block_rows(10**9, 0.001, torch.float64) == 1  # never zero rows


def test_knn_radii_match_a_brute_force_sort():
    x = torch.randn(301, 10, dtype=torch.float64)
    radii = knn_radii(x, (1, 3, 5), memory_mb=0.05)
    ordered = torch.cdist(x, x).sort(dim=1).values  # column 0: the point itself
    for k in (1, 3, 5):
        torch.testing.assert_close(radii[k], ordered[:, k], rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="k=5 needs more than 5"):
        knn_radii(x[:5], (5,))


def test_known_cases():
    """Identical sets: precision, recall and coverage 1, density near its expected 1; far
    apart sets: all 0."""
    x = torch.randn(400, 6, dtype=torch.float64)
    same = prdc(x, x.clone())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0, abs=0.15)
    far = prdc(x, x + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_real_radii_are_cached_beside_the_features(tmp_path, monkeypatch):
    import gan_lab.metrics.compute as compute

    real = torch.randn(300, 12)
    fake = torch.randn(250, 12) + 0.1
    stats = tmp_path / "domain-300-abc.pt"  # the real features' cache file (its key)
    first = prdc_score(real, fake, stats_path=stats, bar=False)
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert cached == ["domain-300-abc-knn-k3-5-float64.pt"]
    # A hit computes no real radii: only the generated set's (k=3) are computed.
    calls = []
    real_knn = compute.knn_radii
    monkeypatch.setattr(compute, "knn_radii", lambda *a, **k: calls.append(a) or real_knn(*a, **k))
    assert prdc_score(real, fake, stats_path=stats, bar=False) == first
    assert calls == []
    # Other k or dtype: another entry. A damaged entry is recomputed, not trusted.
    cached_real_radii(real, stats, (3, 7), 64, "float64", bar=False)
    assert len(list(tmp_path.iterdir())) == 2 and len(calls) == 1
    (tmp_path / cached[0]).write_bytes(b"garbage")
    assert prdc_score(real, fake, stats_path=stats, bar=False) == first


def test_names_and_too_small_sets():
    assert result_names("prdc", "domain") == (
        "precision_domain", "recall_domain", "density_domain", "coverage_domain")  # fmt: skip
    assert result_names("prdc") == ("precision", "recall", "density", "coverage")
    value = {"precision": 0.5, "recall": 0.25, "density": 1.5, "coverage": 0.75}
    assert named_results("prdc", "inception", value)["density_inception"] == 1.5
    kwargs = {"fid": False, "kid": False, "is_splits": None, "real_what": "the held-out set",
              "hint": "use more"}  # fmt: skip
    check_counts(6, 4, prdc_k=(3, 5), **kwargs)  # 6 real > k=5; 4 generated > k=3
    with pytest.raises(UserError, match=r"held-out set has 5 image\(s\).*\(k=5\).*at least 6"):
        check_counts(5, 100, prdc_k=(3, 5), **kwargs)
    with pytest.raises(UserError, match=r"generated set has 3 image\(s\), too few for recall"):
        check_counts(100, 3, prdc_k=(3, 5), **kwargs)


def test_stage_logs_one_line_and_draws_no_bar_off_a_terminal(caplog, capsys):
    caplog.set_level(logging.INFO, logger="gan_lab.metrics.progress")
    with Stage("generated images (domain)", 100) as stage:  # pytest's stderr is no terminal
        assert stage.bar is None
        for _ in range(4):
            stage(25)
    assert capsys.readouterr().err == ""
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("generated images (domain): 100 img in ")
    with Stage("forced", 10, bar=True) as stage:
        stage(10)
    assert "forced" in capsys.readouterr().err  # tqdm draws on stderr
    with Stage("off", 10, bar=False) as stage:
        assert stage.bar is None
