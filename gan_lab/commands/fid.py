"""FID (and KID, IS) between two image sets, in the style of pytorch-fid.

    python -m gan_lab.fid PATH_A PATH_B [--kid] [--is] [--prdc]
                          [--extractor inception|domain:<dataset>] [--resize legacy|clean]

Each PATH is a folder of images (searched recursively, decoded with PIL as torch-fidelity
does) or a dataset split such as ``mnist:test`` or ``cifar10:train``. PATH_A plays the real
set. Prints one JSON object: ``fid`` (and ``kid_mean``/``kid_std``, ``is_mean``/``is_std`` of
PATH_B, ``precision``/``recall``/``density``/``coverage`` of PATH_B against PATH_A), the
extractor, the image counts actually compared (``num_a``, ``num_b``; fewer than
``--limit`` when a set is smaller, with a warning) and their ``label`` ("sound" for at least
10,000 images in each set). A set too small for a metric is a one-line error. The numbers
come from torchmetrics, on torch-fidelity's Inception (``antialias=False``) or on a dataset's
domain classifier.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gan_lab.commands.cli import OneLineArgumentParser, run_user_errors_as_one_line
from gan_lab.config import datamodule_from_conf
from gan_lab.data.folder import scan_images
from gan_lab.data.transforms import fit_images
from gan_lab.errors import UserError
from gan_lab.io import atomic_write
from gan_lab.metrics.compute import (
    cached_outputs,
    fid_score,
    inception_score,
    kid_score,
    prdc_score,
    real_stats_path,
    timed_extract,
)
from gan_lab.metrics.extractors import build_extractor
from gan_lab.metrics.prdc import DC_K, PR_K
from gan_lab.metrics.protocol import (
    check_counts,
    kid_subset,
    label,
    named_results,
    no_logits_reason,
    prdc_k_record,
    warn_if_fewer,
)

log = logging.getLogger("gan_lab.commands.fid")
SPLITS = ("train", "test")
IS_SPLITS = 10


def load_folder(folder: Path, limit: int | None = None) -> torch.Tensor:
    """Every image under ``folder`` as uint8 RGB [N, 3, H, W]; all must share one size."""
    paths = scan_images(folder)[:limit]
    if not paths:
        raise UserError(f"{folder} has no jpg/jpeg/png/bmp/webp images")
    arrays = []
    for path in paths:
        try:
            with Image.open(path) as img:
                arrays.append(np.asarray(img.convert("RGB")))
        except OSError as err:
            raise UserError(f"cannot decode {path} ({err}); remove it or fix it") from None
        if arrays[-1].shape != arrays[0].shape:
            raise UserError(
                f"{path} is {arrays[-1].shape[1]}x{arrays[-1].shape[0]} but {paths[0]} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; the images of a set must share a size"
            )
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_set(spec: str, limit: int | None = None) -> tuple[torch.Tensor, Any]:
    """(uint8 images, datamodule or None) for a folder path or ``dataset:split``."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_folder(path, limit), None
    if ":" not in spec:
        raise UserError(f"{spec} is neither a folder nor a dataset split like mnist:test")
    name, split = spec.split(":", 1)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} in {spec}; use {name}:train or {name}:test")
    datamodule = datamodule_from_conf(name)
    images = datamodule.train_images() if split == "train" else datamodule.test_images()
    return images[:limit], datamodule


def _stats_dir(datamodule: Any) -> Path:
    """Dataset splits share the real-statistics cache of training and gan_lab.eval."""
    return Path(datamodule.data_dir) / "cache" / "stats"


def evaluate_sets(
    spec_a: str,
    spec_b: str,
    extractor_name: str = "inception",
    kid: bool = False,
    score_is: bool = False,
    limit: int | None = None,
    weights_path: str | None = None,
    prdc: bool = False,
    pr_k: int = PR_K,
    dc_k: int = DC_K,
    knn_memory_mb: float = 1024,
    resize: str = "legacy",
    bar: bool | None = None,
) -> dict[str, Any]:
    """The metrics of ``spec_b`` against ``spec_a``; see the module doc. ``bar``: progress
    bars (None: on a terminal only)."""
    a, dm_a = load_set(spec_a, limit)
    b, dm_b = load_set(spec_b, limit)
    if limit is not None:
        for x, spec in ((a, spec_a), (b, spec_b)):
            warn_if_fewer(limit, len(x), spec, asked="--limit")
    check_counts(
        len(a),
        len(b),
        fid=True,
        kid=kid,
        is_splits=IS_SPLITS if score_is else None,
        prdc_k=(pr_k, dc_k) if prdc else None,
        real_what=spec_a,
        generated_what=spec_b,
        hint="give more images",
    )
    if extractor_name.startswith("domain:"):
        dataset = extractor_name.split(":", 1)[1]
        dm = next((d for d in (dm_a, dm_b) if d is not None and d.name == dataset), None)
        dm = dm or datamodule_from_conf(dataset)
        extractor = build_extractor("domain", datamodule=dm)
        size, channels = dm.image_size, dm.channels
        a, b = fit_images(a, size, channels), fit_images(b, size, channels)
    elif extractor_name == "inception":
        extractor = build_extractor("inception", weights_path=weights_path, resize=resize)
    else:
        raise UserError(f"unknown extractor {extractor_name!r}; use inception or domain:<dataset>")
    out_a, out_b = (
        cached_outputs(extractor, x, _stats_dir(dm), extractor.name, bar=bar)
        if dm is not None
        else timed_extract(extractor, x, f"{spec} ({extractor_name})", bar=bar)
        for x, dm, spec in ((a, dm_a, spec_a), (b, dm_b, spec_b))
    )
    # One extractor: the metrics' names carry no extractor suffix ("fid", "kid_mean", ...).
    result: dict[str, Any] = {
        **named_results("fid", None, fid_score(out_a["features"], out_b["features"])),
        "extractor": getattr(extractor, "identity", extractor_name),
        "num_a": len(a),
        "num_b": len(b),
        "label": label(min(len(a), len(b))),
    }
    if kid:
        result.update(named_results("kid", None, kid_score(out_a["features"], out_b["features"])))
        result["kid_subset_size"] = kid_subset(1000, len(a), len(b))
    if score_is:
        if "logits" not in out_b:
            raise UserError(f"no Inception Score: {no_logits_reason('--weights-path')}")
        result.update(named_results("is", None, inception_score(out_b["logits"], IS_SPLITS)))
    if prdc:
        # PATH_A's k-NN radii are cached with its features when it is a dataset split.
        path = real_stats_path(extractor, a, _stats_dir(dm_a), extractor.name) if dm_a else None
        value = prdc_score(out_a["features"], out_b["features"], stats_path=path, pr_k=pr_k,
                           dc_k=dc_k, memory_mb=knn_memory_mb, bar=bar)  # fmt: skip
        result.update(named_results("prdc", None, value))
        result["prdc_k"] = prdc_k_record(pr_k, dc_k)
    if getattr(extractor, "resize", None):
        result["resize"] = extractor.resize
    return result


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="python -m gan_lab.fid", description=__doc__.split("\n")[0])
    parser.add_argument("path_a", help="folder of images or dataset:split (the real set)")
    parser.add_argument("path_b", help="folder of images or dataset:split")
    parser.add_argument("--kid", action="store_true", help="also KID (mean, std)")
    parser.add_argument("--is", dest="score_is", action="store_true", help="also IS of PATH_B")
    parser.add_argument("--prdc", action="store_true",
                        help="also precision, recall, density and coverage of PATH_B")  # fmt: skip
    parser.add_argument("--pr-k", type=int, default=PR_K, help="k of precision/recall")
    parser.add_argument("--dc-k", type=int, default=DC_K, help="k of density/coverage")
    parser.add_argument("--knn-memory-mb", type=float, default=1024,
                        help="memory bound of each k-NN distance block")  # fmt: skip
    parser.add_argument("--resize", default="legacy", choices=("legacy", "clean"),
                        help="legacy (TF1 bilinear, as papers) or clean (clean-fid)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--extractor", default="inception", help="inception or domain:<dataset>")
    parser.add_argument("--limit", type=int, default=None, help="use the first N images of each")
    parser.add_argument("--weights-path", default=None, help="Inception weights file")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    result = run_user_errors_as_one_line(
        lambda: evaluate_sets(
            args.path_a,
            args.path_b,
            args.extractor,
            args.kid,
            args.score_is,
            args.limit,
            args.weights_path,
            prdc=args.prdc,
            pr_k=args.pr_k,
            dc_k=args.dc_k,
            knn_memory_mb=args.knn_memory_mb,
            resize=args.resize,
            bar=False if args.no_progress else None,
        )  # fmt: skip
    )
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        atomic_write(Path(args.out), lambda f: f.write(f"{text}\n".encode()))


if __name__ == "__main__":
    main()
