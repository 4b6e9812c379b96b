"""A sweep's runs grouped into settings, and their per-setting statistics (``gan_lab.report``).

Every ``summary.json`` below a multirun directory is one run (with its ``eval.json`` merged in
as ``eval_<metric>``); runs that share their overrides but the seed form one :class:`Setting`.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gan_lab.errors import UserError

# Overrides that do not define a setting: repeats and bookkeeping.
IGNORED_KEYS = (
    "seed", "hydra", "experiment", "logger", "trainer.enable_progress_bar", "ckpt_path", "resume",
)  # fmt: skip


# A run directory's final evaluation (python -m gan_lab.eval ckpt_path=<run> out=<run>/eval.json):
# its metrics join the table as eval_<metric>, e.g. eval_fid_domain on 10,000 samples.
EVAL_FILE = "eval.json"


def _merge_eval(run: dict[str, Any], path: Path) -> None:
    if run.get("status") != "completed" or not path.is_file():
        return
    try:
        evaluation = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # a damaged eval.json leaves the run's own metrics
    metrics = run.setdefault("metrics", {})
    for key, value in evaluation.get("metrics", {}).items():
        metrics[f"eval_{key}"] = value
    run["eval_protocol"] = evaluation.get("metrics_protocol", {})


@dataclass
class Setting:
    """The runs of one setting (same overrides but the seed)."""

    name: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def completed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") == "completed"]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("status") != "completed"]


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def load_settings(root: Path) -> list[Setting]:
    """Settings in a stable order (by name), from every summary.json under ``root``.

    A setting is named by the overrides that differ between runs of the sweep (overrides
    every run shares, ``seed`` and Hydra's own keys say nothing about the setting).
    """
    paths = sorted(root.rglob("summary.json"))
    if not paths:
        raise UserError(f"no summary.json under {root}; pass a multirun directory")
    runs = []
    for path in paths:
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            run = {"status": "failed", "error": f"unreadable summary.json ({err})"}
        run.setdefault("run_dir", str(path.parent))
        _merge_eval(run, path.parent / EVAL_FILE)
        runs.append(run)
    values: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        for o in run.get("overrides", []):
            values[_key(o)].add(o)
    varying = {k for k, v in values.items() if len(v) > 1 and not k.startswith(IGNORED_KEYS)}
    settings: dict[str, Setting] = {}
    for run in runs:
        kept = sorted(o for o in run.get("overrides", []) if _key(o) in varying)
        name = ",".join(kept) or "(all runs)"
        settings.setdefault(name, Setting(name)).runs.append(run)
    return [settings[k] for k in sorted(settings, key=natural_key)]


def natural_key(name: str) -> list[Any]:
    """Sort "latent_dim=25" before "latent_dim=100": numbers in names compare as numbers."""
    parts = re.split(r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)", name)
    return [(0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts)]


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def metric_names(settings: list[Setting]) -> list[str]:
    """Final metrics present in any completed run; ``*_std`` (spread within a run, such as IS
    over splits) is left out: the report's spread is over seeds."""
    names = {k for s in settings for r in s.completed for k in r.get("metrics", {})}
    return sorted(n for n in names if not n.endswith("_std"))


def table_rows(settings: list[Setting], metrics: list[str]) -> list[dict[str, Any]]:
    rows = []
    for s in settings:
        row: dict[str, Any] = {"setting": s.name, "runs": len(s.completed),
                               "failed": len(s.failed)}  # fmt: skip
        for m in metrics:
            values = [r["metrics"][m] for r in s.completed if m in r.get("metrics", {})]
            row[f"{m}_mean"], row[f"{m}_std"] = _mean_std([float(v) for v in values])
        rows.append(row)
    return rows
