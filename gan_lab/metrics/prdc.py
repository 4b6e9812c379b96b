"""Precision, recall, density and coverage of generated vs real feature vectors, by k-NN.

- **Improved precision and recall** (Kynkäänniemi et al., 2019; k=3 by default, as
  stylegan2-ada's ``pr50k3`` and torch-fidelity's ``prc``): precision is the fraction of
  generated samples inside the real manifold (the union of balls around each real sample, of
  radius its distance to its k-th nearest real neighbour); recall, the fraction of real samples
  inside the generated manifold. Inside means ``distance <= radius``, as in both references.
- **Density and coverage** (Naeem et al., 2020; k=5, the ``prdc`` package): density counts how
  many real balls hold each generated sample, divided by k and averaged (1 for matching
  distributions, can exceed 1); coverage is the fraction of real samples whose ball holds at
  least one generated sample. Inside means ``distance < radius``, as in ``prdc``.

Unlike ``prdc`` (full N x N matrices) and torch-fidelity, the distances here are computed in
row blocks whose size keeps each block under ``memory_mb``, so 50k x 50k in 2048-d fits a
small machine; every statistic is reduced block by block. Distances are squared Euclidean
from one matrix product, in float64 by default: the decisions (inside a ball or not) then
match an exact computation, which float32 does not guarantee for near-ties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

# The published neighbourhood sizes: precision/recall (Kynkäänniemi et al.), density/coverage
# (Naeem et al.).
PR_K = 3
DC_K = 5
# A block holds the distances and two same-size temporaries (comparisons, reductions).
_BLOCK_COPIES = 3


def _dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    return {"float64": torch.float64, "float32": torch.float32}[name]


def block_rows(num_cols: int, memory_mb: float, dtype: torch.dtype) -> int:
    """Rows per distance block so that a block and its temporaries stay under memory_mb."""
    per_row = num_cols * torch.finfo(dtype).bits // 8 * _BLOCK_COPIES
    return max(1, int(memory_mb * 2**20) // per_row)


def _sq_distance_blocks(
    x: torch.Tensor, y: torch.Tensor, memory_mb: float
) -> Iterator[tuple[slice, torch.Tensor]]:
    """(rows, squared distances of those rows of x to all of y), block by block."""
    y_sq = (y * y).sum(1)
    step = block_rows(len(y), memory_mb, x.dtype)
    for start in range(0, len(x), step):
        rows = slice(start, min(start + step, len(x)))
        xb = x[rows]
        d = torch.addmm(y_sq.unsqueeze(0), xb, y.T, alpha=-2.0)  # |y|^2 - 2 x.y
        d.add_((xb * xb).sum(1, keepdim=True)).clamp_(min=0.0)
        yield rows, d


def knn_radii(
    features: torch.Tensor,
    ks: Iterable[int],
    memory_mb: float = 1024,
    dtype: str | torch.dtype = "float64",
    progress: Callable[[int], None] | None = None,
) -> dict[int, torch.Tensor]:
    """{k: each sample's distance to its k-th nearest other sample}, in ``dtype``.

    The k-th neighbour excluding the sample itself is the (k+1)-th smallest distance including
    it (distance 0), as ``prdc`` and torch-fidelity count.
    """
    ks = sorted(set(ks))
    if len(features) <= ks[-1]:
        raise ValueError(f"k={ks[-1]} needs more than {ks[-1]} samples, got {len(features)}")
    x = features.to(dtype=_dtype(dtype))
    out = {k: torch.empty(len(x), dtype=x.dtype, device=x.device) for k in ks}
    for rows, d in _sq_distance_blocks(x, x, memory_mb):
        nearest = d.topk(ks[-1] + 1, dim=1, largest=False).values  # sorted ascending
        for k in ks:
            out[k][rows] = nearest[:, k].sqrt()
        if progress is not None:
            progress(rows.stop - rows.start)
    return out


def prdc(
    real: torch.Tensor,
    fake: torch.Tensor,
    pr_k: int = PR_K,
    dc_k: int = DC_K,
    real_radii: dict[int, torch.Tensor] | None = None,
    memory_mb: float = 1024,
    dtype: str | torch.dtype = "float64",
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """{precision, recall, density, coverage} of ``fake`` [M, D] against ``real`` [N, D].

    ``real_radii``: the real set's :func:`knn_radii` at ``pr_k`` and ``dc_k`` (from the stats
    cache), computed here if None. ``progress`` is called with a count of rows done, over
    M (fake radii) + M (fake vs real) rows, plus N if the real radii are computed here.
    """
    dt = _dtype(dtype)
    if real_radii is None or not {pr_k, dc_k} <= set(real_radii):
        real_radii = knn_radii(real, (pr_k, dc_k), memory_mb, dt, progress)
    r_pr = real_radii[pr_k].to(fake.device, dt).square()
    r_dc = real_radii[dc_k].to(fake.device, dt).square()
    fake_r = knn_radii(fake, (pr_k,), memory_mb, dt, progress)[pr_k].square()
    x, y = fake.to(dtype=dt), real.to(fake.device, dt)
    precise = 0  # generated samples inside some real pr_k-ball
    density = 0  # (generated, real dc_k-ball holding it) pairs
    recalled = torch.zeros(len(y), dtype=torch.bool, device=y.device)  # inside a generated ball
    nearest_fake = torch.full((len(y),), float("inf"), dtype=dt, device=y.device)  # coverage
    for rows, d in _sq_distance_blocks(x, y, memory_mb):
        precise += int((d <= r_pr).any(1).sum())
        density += int((d < r_dc).sum())
        recalled |= (d <= fake_r[rows].unsqueeze(1)).any(0)
        torch.minimum(nearest_fake, d.min(0).values, out=nearest_fake)
        if progress is not None:
            progress(rows.stop - rows.start)
    return {
        "precision": precise / len(x),
        "recall": float(recalled.double().mean()),
        "density": density / (dc_k * len(x)),
        "coverage": float((nearest_fake < r_dc).double().mean()),
    }
