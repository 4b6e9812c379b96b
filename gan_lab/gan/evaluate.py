"""Score a checkpoint's generator against held-out real images (what ``gan_lab.eval`` runs).

See :mod:`gan_lab.eval` for the protocol; this module holds the work so that other
commands (``gan_lab.sample``, ``gan_lab.bench``) and notebooks can use it without importing a
command.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from gan_lab.gan.checkpoints import (
    load_generator,
    resolve_ckpt_path,
    safe_instantiate,
    stored_n_disc,
)
from gan_lab.metrics.compute import (
    cached_outputs,
    extract,
    fid_score,
    inception_score,
    kid_score,
    prdc_score,
    real_stats_path,
)
from gan_lab.metrics.extractors import build_extractor, resolve_extractors
from gan_lab.metrics.progress import Stage
from gan_lab.metrics.protocol import (
    check_counts,
    named_results,
    plan_metrics,
    prdc_k_record,
    protocol_record,
    warn_if_fewer,
)

log = logging.getLogger(__name__)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def generated_batches(generator, latent_dim: int, n: int, batch_size: int, seed: int, device):
    g = torch.Generator(device="cpu").manual_seed(seed)
    for start in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - start), latent_dim, generator=g).to(device)
        with torch.no_grad():
            yield generator(z)


def check_held_out(datamodule: Any, data_config: dict[str, Any], ckpt_path: Path) -> dict:
    """The held-out set's record (held_out_info), checked against what training used."""
    info = dict(datamodule.held_out_info())
    if not datamodule.has_official_test_split and "split_seed" not in data_config:
        log.warning(
            "%s predates the fixed held-out split (its data config has no split_seed): its "
            "training may have seen some of these held-out images; retrain to score it soundly",
            ckpt_path,
        )
        info["legacy_checkpoint"] = True
    if ckpt_path.parent.name != "checkpoints":
        return info  # not in a run directory: no training record to compare with
    summary = ckpt_path.parent.parent / "summary.json"  # <run dir>/checkpoints/<file>.ckpt
    try:
        trained = json.loads(summary.read_text())["metrics_protocol"]["held_out"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return info  # the run has no record of it (metrics=none, or an older run)
    info["matches_training"] = trained == info["sha256"]
    if not info["matches_training"]:
        log.warning(
            "the held-out images differ from those the training run %s validated on (sha256 "
            "%s... vs %s...): the data changed since", summary.parent, info["sha256"][:12],
            trained[:12],
        )  # fmt: skip
    return info


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score the checkpoint's generator; the result dict is what eval.json holds."""
    start = time.perf_counter()
    device = pick_device(cfg.device)
    generator, config, ckpt = load_generator(cfg.ckpt_path)
    generator.to(device)
    m = cfg.metrics
    data_cfg = {**config["data"], "data_dir": cfg.paths.data_dir, "mirrors": cfg.paths.data_mirrors,
                "val_samples": m.num_samples}  # fmt: skip
    datamodule = safe_instantiate(data_cfg, where="checkpoint gan_lab_config.data")
    held_out = check_held_out(datamodule, config["data"], resolve_ckpt_path(cfg.ckpt_path))
    real = datamodule.val_images()
    n = len(real)  # one generated image per held-out one
    warn_if_fewer(m.num_samples, n, f"the {datamodule.name} held-out set")
    check_counts(
        n,
        n,
        fid=m.fid,
        kid=m.kid,
        is_splits=m.is_splits if m.inception_score else None,
        prdc_k=(m.pr_k, m.dc_k) if m.prdc else None,
        real_what=f"the {datamodule.name} held-out set",
        hint="evaluate on a dataset with more held-out images, or turn that metric off",
    )
    stats_dir = Path(datamodule.data_dir) / "cache" / "stats" if m.cache_real_stats else None
    results: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    extractors: dict[str, Any] = {}
    bar = None if cfg.get("progress", True) else False  # None: bars on a terminal only
    for name in resolve_extractors(m.extractors, datamodule):
        extractor = build_extractor(name, datamodule=datamodule, weights_path=m.weights_path,
                                    resize=m.resize)  # fmt: skip
        extractors[name] = extractor
        kinds, missing = plan_metrics(name, extractor.has_logits, fid=m.fid, kid=m.kid,
                                      inception_score=m.inception_score, prdc=m.prdc)  # fmt: skip
        unavailable.update(missing)
        extractor.to(device)
        real_out = cached_outputs(extractor, real, stats_dir, name, device, bar=bar)
        with Stage(f"generated images ({name})", n, bar=bar) as stage:
            fake_out = extract(
                extractor,
                generated_batches(generator, config["model"]["latent_dim"], n, cfg.batch_size,
                                  cfg.seed, device),
                device,
                progress=stage,
            )  # fmt: skip
        real_f, fake_f = real_out["features"].cpu(), fake_out["features"]
        for kind in kinds:
            if kind == "fid":
                value = fid_score(real_f, fake_f)
            elif kind == "kid":
                value = kid_score(real_f, fake_f, m.kid_subset_size, seed=cfg.seed)
            elif kind == "prdc":
                value = prdc_score(real_f, fake_f, bar=bar, pr_k=m.pr_k, dc_k=m.dc_k,
                                   stats_path=real_stats_path(extractor, real, stats_dir, name),
                                   memory_mb=m.knn_memory_mb, dtype=m.knn_dtype)  # fmt: skip
            else:
                value = inception_score(fake_out["logits"], m.is_splits)
            results.update(named_results(kind, name, value))
    protocol = protocol_record(
        num_real=n,
        num_generated=n,
        requested=m.num_samples,
        extractors=extractors,
        held_out=held_out,
        unavailable=unavailable,
        kid_subset_size=m.kid_subset_size if m.kid else None,
        prdc_k=prdc_k_record(m.pr_k, m.dc_k) if m.prdc else None,
        seed=cfg.seed,
    )
    return {
        "ckpt_path": str(resolve_ckpt_path(cfg.ckpt_path)),
        "generator_steps": int(ckpt.get("global_step", 0)) // (stored_n_disc(config) + 1),
        "dataset": datamodule.name,
        "metrics": results,
        "metrics_protocol": protocol,
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 2),
    }
