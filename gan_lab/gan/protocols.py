"""The reports' metric protocol (100 images) against a sound one (10,000), side by side.

For each image source (real held-out images, uniform noise, one or more generator
checkpoints), each sample count and each extractor, FID against as many real *training*
images and IS are computed over several independent draws; the spread over draws shows
whether a protocol can tell the sources apart. ``notebooks/gan_lab.ipynb`` renders the table.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

import torch

from gan_lab.config import datamodule_from_conf
from gan_lab.gan.checkpoints import load_generator
from gan_lab.metrics.compute import extract, fid_score, in_batches, inception_score
from gan_lab.metrics.extractors import build_extractor

log = logging.getLogger(__name__)


def _generated(ckpt_path: str, n: int, seed: int) -> torch.Tensor:
    generator, config, _ = load_generator(ckpt_path)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, config["model"]["latent_dim"], generator=g)
    with torch.no_grad():
        images = torch.cat([generator(b) for b in in_batches(z, 500)])
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def compare_protocols(
    checkpoints: dict[str, str],
    dataset: str = "mnist",
    sizes: Sequence[int] = (100, 10_000),
    extractors: Sequence[str] = ("domain",),
    draws: int = 5,
    weights_path: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of (source, n, extractor, FID mean/std, IS mean/std over ``draws`` draws).

    ``checkpoints`` maps a label to a checkpoint file or run dir. Draw ``d`` takes a fresh
    random subset of real images and fresh latent vectors (seed ``d``).
    """
    dm = datamodule_from_conf(dataset)
    train, test = dm.train_images(), dm.test_images()
    rows = []
    for ex_name in extractors:
        extractor = build_extractor(ex_name, datamodule=dm, weights_path=weights_path)
        for n in sizes:
            n_eff = min(n, len(test))
            per_source: dict[str, dict[str, list[float]]] = {}
            for d in range(draws):
                g = torch.Generator().manual_seed(d)
                ref = train[torch.randperm(len(train), generator=g)[:n_eff]]
                sources = {
                    "real (test split)": test[torch.randperm(len(test), generator=g)[:n_eff]],
                    "uniform noise": torch.randint(
                        0, 256, ref.shape, generator=g, dtype=torch.uint8
                    ),  # fmt: skip
                }
                for label, ckpt in checkpoints.items():
                    sources[label] = _generated(ckpt, n_eff, seed=d)
                ref_out = extract(extractor, in_batches(ref))
                for label, images in sources.items():
                    out = extract(extractor, in_batches(images))
                    scores = per_source.setdefault(label, {"fid": [], "is": []})
                    scores["fid"].append(fid_score(ref_out["features"], out["features"]))
                    if "logits" in out:
                        scores["is"].append(inception_score(out["logits"], splits=10, seed=d)[0])
                log.info("%s n=%d draw %d/%d done", ex_name, n_eff, d + 1, draws)
            for label, scores in per_source.items():
                fid_mean, fid_std = _mean_std(scores["fid"])
                row = {"source": label, "n": n_eff, "extractor": ex_name, "draws": draws,
                       "fid_mean": fid_mean, "fid_std": fid_std}  # fmt: skip
                if scores["is"]:
                    row["is_mean"], row["is_std"] = _mean_std(scores["is"])
                rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (mean ± std over draws)."""
    lines = [
        "| source | images | extractor | FID vs real train | IS |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        is_text = f"{r['is_mean']:.2f} ± {r['is_std']:.2f}" if "is_mean" in r else "n/a"
        lines.append(
            f"| {r['source']} | {r['n']} | {r['extractor']} | "
            f"{r['fid_mean']:.1f} ± {r['fid_std']:.1f} | {is_text} |"
        )
    return "\n".join(lines)
