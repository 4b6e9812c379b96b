"""The bench driver: checks the options, runs the chosen sections and collects their rows."""

from __future__ import annotations

import json
import sys
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


def run(bench: DictConfig) -> dict[str, Any]:
    device = pick_device(bench.device)
    known = {"train", "precision", "memory", "data", "eval", "flops", "profile", "knn", "peer"}
    unknown = set(bench.sections) - known
    if unknown:
        raise UserError(f"unknown bench sections {sorted(unknown)}; choose from {sorted(known)}")
    result: dict[str, Any] = {"machine": machine(device), "config": OmegaConf.to_container(bench)}
    models = {k: list(v) for k, v in bench.models.items()}
    if bench.largest_batch not in ("cuda", "always", "never"):
        raise UserError(f"largest_batch={bench.largest_batch}: choose cuda, always or never")
    for key, names in (("precision_models", bench.precision_models),
                       ("eval_model", [bench.eval_model]),
                       ("profile", [p.model for p in bench.profile])):  # fmt: skip
        for name in names:
            if name not in models:
                raise UserError(f"{key}: {name} is not one of the models {list(models)}")
    if "train" in bench.sections:
        result["train"] = [
            _log(compare_training(name, training_config(o, bench.batch_size), bench, device))
            for name, o in models.items()
        ]
    if "precision" in bench.sections:
        precisions = list(bench.precisions) + (["16-mixed"] if device.type == "cuda" else [])
        rows = []
        for name in bench.precision_models:
            for precision in precisions:
                for channels_last in bench.channels_last:
                    for compiled in bench.compile:
                        cfg = training_config(models[name], bench.batch_size, precision,
                                              channels_last, compiled)  # fmt: skip
                        rows.append(_log(compare_training(name, cfg, bench, device)))
        result["precision"] = rows
    if "memory" in bench.sections:
        if bench.largest_batch == "always" or (bench.largest_batch, device.type) == ("cuda",) * 2:
            result["memory"] = [
                _log(largest_batch(name, training_config(o, bench.batch_size), bench, device))
                for name, o in models.items()
            ]
        else:  # host RAM is not what limits the batch, and a too-large one is OOM-killed
            result["memory"] = {
                "skipped": f"no largest-batch search on {device.type} with "
                f"largest_batch={bench.largest_batch}"
            }
    if "data" in bench.sections:
        result["data"] = [_log(data_path(d, bench, device)) for d in bench.data_datasets]
    if "eval" in bench.sections:
        result["eval"] = _log(evaluation(bench, device))
    if "flops" in bench.sections:
        peak32 = matmul_peak(bench.matmul_size, torch.float32, device)
        peak16 = matmul_peak(bench.matmul_size, torch.bfloat16, device)
        flops = {"matmul_peak_fp32": peak32, "matmul_peak_bf16": peak16, "models": []}
        fp32_rows = {r["name"]: r for r in result.get("train", [])}
        for name, overrides in models.items():
            cfg = training_config(overrides, bench.batch_size)
            per_image = flops_per_image(cfg, device)
            row = {"name": name, "flops_per_image": per_image}
            if name in fp32_rows:
                achieved = per_image * fp32_rows[name]["lightning_images_per_second"]
                row.update(achieved_flops=achieved, fraction_of_fp32_peak=achieved / peak32)
            flops["models"].append(_log(row))
        result["flops"] = flops
    if "profile" in bench.sections:
        result["profile"] = []
        for i, p in enumerate(bench.profile):
            cfg = training_config(models[p.model], bench.batch_size, p.precision, p.channels_last)
            trace = Path(bench.out).with_name(f"{Path(bench.out).stem}_trace{i}.json")
            result["profile"].append(_log(profile_training(p.model, cfg, bench, device, trace)))
    if "knn" in bench.sections:
        result["knn"] = [_log(knn_metrics(n, bench, device)) for n in bench.knn_sizes]
    if "peer" in bench.sections:
        result["peer"] = _log(peer_comparison(bench, device))
    return result


def _log(row: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(row, default=str), file=sys.stderr, flush=True)
    return row
