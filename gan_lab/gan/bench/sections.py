"""The bench driver: checks the options, runs the chosen sections and collects their rows."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gan_lab.errors import UserError
from gan_lab.gan.bench.peer import peer_comparison
from gan_lab.gan.bench.setup import machine, training_config
from gan_lab.gan.bench.throughput import (
    data_path,
    evaluation,
    flops_per_image,
    knn_metrics,
    matmul_peak,
)
from gan_lab.gan.bench.training import compare_training, largest_batch, profile_training
from gan_lab.gan.evaluate import pick_device


def run(bench: DictConfig, save: Callable[[dict[str, Any]], None] = lambda result: None
        ) -> dict[str, Any]:  # fmt: skip
    """Run the chosen sections. ``save`` gets the result so far after every row, so a run cut
    short (a time limit, a crash) keeps what it measured; ``complete`` is true only at the end.
    """
    device = pick_device(bench.device)
    known = {"train", "precision", "memory", "data", "eval", "flops", "profile", "knn", "peer"}
    unknown = set(bench.sections) - known
    if unknown:
        raise UserError(f"unknown bench sections {sorted(unknown)}; choose from {sorted(known)}")
    result: dict[str, Any] = {"machine": machine(device), "config": OmegaConf.to_container(bench),
                              "complete": False}  # fmt: skip
    models = {k: list(v) for k, v in bench.models.items()}
    if bench.largest_batch not in ("cuda", "always", "never"):
        raise UserError(f"largest_batch={bench.largest_batch}: choose cuda, always or never")
    for key, names in (("precision_models", bench.precision_models),
                       ("eval_model", [bench.eval_model]),
                       ("profile", [p.model for p in bench.profile])):  # fmt: skip
        for name in names:
            if name not in models:
                raise UserError(f"{key}: {name} is not one of the models {list(models)}")

    def record(row: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One measured row: added to ``rows`` (if given), printed (stderr), saved."""
        if rows is not None:
            rows.append(row)
        print(json.dumps(row, default=str), file=sys.stderr, flush=True)
        save(result)
        return row

    if "train" in bench.sections:
        result["train"] = []
        for name, o in models.items():
            cfg = training_config(o, bench.batch_size)
            measure = partial(compare_training, name, cfg, bench, device)
            record(_setting(name, cfg, measure), result["train"])
    if "precision" in bench.sections:
        precisions = list(bench.precisions) + (["16-mixed"] if device.type == "cuda" else [])
        result["precision"] = []
        for name in bench.precision_models:
            for precision in precisions:
                for channels_last in bench.channels_last:
                    for compiled in bench.compile:
                        cfg = training_config(models[name], bench.batch_size, precision,
                                              channels_last, compiled)  # fmt: skip
                        measure = partial(compare_training, name, cfg, bench, device)
                        record(_setting(name, cfg, measure), result["precision"])
    if "memory" in bench.sections:
        if bench.largest_batch == "always" or (bench.largest_batch, device.type) == ("cuda",) * 2:
            result["memory"] = []
            for name, o in models.items():
                cfg = training_config(o, bench.batch_size)
                measure = partial(largest_batch, name, cfg, bench, device)
                record(_setting(name, cfg, measure), result["memory"])
        else:  # host RAM is not what limits the batch, and a too-large one is OOM-killed
            result["memory"] = record({"skipped": f"no largest-batch search on {device.type} "
                                       f"with largest_batch={bench.largest_batch}"})  # fmt: skip
    if "data" in bench.sections:
        result["data"] = []
        for d in bench.data_datasets:
            record(data_path(d, bench, device), result["data"])
    if "eval" in bench.sections:
        result["eval"] = record(evaluation(bench, device))
    if "flops" in bench.sections:
        peak32 = matmul_peak(bench.matmul_size, torch.float32, device)
        peak16 = matmul_peak(bench.matmul_size, torch.bfloat16, device)
        result["flops"] = {"matmul_peak_fp32": peak32, "matmul_peak_bf16": peak16, "models": []}
        fp32_rows = {r["name"]: r for r in result.get("train", []) if "error" not in r}
        for name, overrides in models.items():
            cfg = training_config(overrides, bench.batch_size)
            per_image = flops_per_image(cfg, device)
            row = {"name": name, "flops_per_image": per_image}
            if name in fp32_rows:
                achieved = per_image * fp32_rows[name]["lightning_images_per_second"]
                row.update(achieved_flops=achieved, fraction_of_fp32_peak=achieved / peak32)
            record(row, result["flops"]["models"])
    if "profile" in bench.sections:
        result["profile"] = []
        for i, p in enumerate(bench.profile):
            cfg = training_config(models[p.model], bench.batch_size, p.precision, p.channels_last)
            trace = Path(bench.out).with_name(f"{Path(bench.out).stem}_trace{i}.json")
            record(profile_training(p.model, cfg, bench, device, trace), result["profile"])
    if "knn" in bench.sections:
        result["knn"] = []
        for n in bench.knn_sizes:
            record(knn_metrics(n, bench, device), result["knn"])
    if "peer" in bench.sections:
        result["peer"] = record(peer_comparison(bench, device))
    result["complete"] = True
    save(result)
    return result


def _setting(name: str, cfg: DictConfig, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure()``'s row, or the setting with the error that stopped it: one setting that
    cannot run here (a compile mode, a batch out of memory) must not cost the others."""
    try:
        return measure()
    except UserError:
        raise
    except Exception as err:
        first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
        torch._dynamo.reset()  # a half-compiled network must not leak into the next setting
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"name": name, "precision": str(cfg.trainer.precision),
                "channels_last": cfg.module.channels_last, "compile": cfg.module.compile,
                "error": f"{type(err).__name__}: {first}"[:500]}  # fmt: skip


def failed_settings(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the training sections whose setting did not run."""
    rows = [r for key in ("train", "precision", "memory") if isinstance(result.get(key), list)
            for r in result[key]]  # fmt: skip
    return [r for r in rows if "error" in r]
