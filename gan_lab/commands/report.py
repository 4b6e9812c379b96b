"""Tables, plots and a contact sheet from a sweep: ``python -m gan_lab.report <multirun dir>``.

Reads every ``summary.json`` below the directory. Runs are grouped into settings by their
command-line overrides, less ``seed`` (the repeats) and Hydra's own keys. Writes into
``<dir>/report/`` (or ``--out``):

- ``report.md`` and ``report.csv``: one row per setting, mean ± std over seeds of each final
  metric, the number of completed and failed runs; failed runs are listed with their errors;
- ``<metric>_by_setting.png``: the metric per setting with error bars (std over seeds);
- ``<metric>_by_step.png``: the metric against generator steps, mean over seeds per setting;
- ``samples.png``: the newest sample grid of one run per setting, labelled.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gan_lab.commands.cli import OneLineArgumentParser, run_user_errors_as_one_line
from gan_lab.errors import UserError
from gan_lab.io import atomic_write

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


def write_tables(settings: list[Setting], metrics: list[str], out: Path) -> list[dict]:
    rows = table_rows(settings, metrics)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    _write_text(out / "report.csv", table.getvalue())
    head = "| setting | runs | failed | " + " | ".join(metrics) + " |"
    lines = [head, "|" + " --- |" * (3 + len(metrics))]
    for row in rows:
        cells = [
            f"{row[f'{m}_mean']:.2f} ± {row[f'{m}_std']:.2f}" if row["runs"] else "-"
            for m in metrics
        ]
        lines.append(f"| {row['setting']} | {row['runs']} | {row['failed']} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    failed = [r for s in settings for r in s.failed]
    if failed:
        lines += ["", "Failed runs:", ""]
        for r in failed:
            error = " ".join(str(r.get("error", "no error recorded")).split())
            lines.append(f"- `{Path(r['run_dir']).name}`: {error}")
    _write_text(out / "report.md", "\n".join(lines) + "\n")
    return rows


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def _save_figure(fig: Any, path: Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` (atomically) and close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def tick_labels(settings: list[str]) -> tuple[list[str], str | None]:
    """Tick labels for settings, and the x-axis label. One swept key: its values as ticks and
    its name on the axis (long names overlap); several keys: one ``key=value`` per line."""
    keys = {s.split("=", 1)[0] for s in settings if "," not in s}
    if len(keys) == 1 and all("," not in s for s in settings):
        return [s.split("=", 1)[-1] for s in settings], keys.pop()
    return [s.replace(",", "\n") for s in settings], None


def plot_by_setting(rows: list[dict], metric: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, xlabel = tick_labels([r["setting"] for r in rows])
    widest = max(len(line) for t in labels for line in t.splitlines())
    fig, ax = plt.subplots(figsize=(max(4, len(rows) * max(1.2, 0.08 * widest)), 3.5))
    x = range(len(rows))
    ax.errorbar(x, [r[f"{metric}_mean"] for r in rows], yerr=[r[f"{metric}_std"] for r in rows],
                fmt="o", capsize=4)  # fmt: skip
    ax.set_xticks(list(x), [f"{t}\n(n={r['runs']})" for t, r in zip(labels, rows, strict=True)],
                  fontsize=8)  # fmt: skip
    ax.set_xlim(-0.5, len(rows) - 0.5)
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    fig.tight_layout()
    return _save_figure(fig, out / f"{metric}_by_setting.png")


def plot_by_step(settings: list[Setting], metric: str, out: Path) -> Path | None:
    """Metric against generator step (mean over seeds); None for a metric with no history,
    such as a final evaluation's eval_<metric>."""
    if not any(metric in point for s in settings for r in s.completed
               for point in r.get("metrics_history", [])):  # fmt: skip
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for s in settings:
        by_step: dict[int, list[float]] = defaultdict(list)
        for run in s.completed:
            for point in run.get("metrics_history", []):
                if metric in point:
                    by_step[int(point["step"])].append(float(point[metric]))
        if by_step:
            steps = sorted(by_step)
            ax.plot(steps, [statistics.fmean(by_step[k]) for k in steps], marker=".",
                    label=s.name)  # fmt: skip
    ax.set_xlabel("generator steps")
    ax.set_ylabel(f"{metric} (mean over seeds)")
    low, high = ax.get_ylim()
    if low > 0 and high / low > 20:  # early FIDs in the thousands flatten the later curve
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save_figure(fig, out / f"{metric}_by_step.png")


def contact_sheet(settings: list[Setting], out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    grids = []
    for s in settings:
        found = [Path(r["run_dir"]) / "samples" / "latest.png" for r in s.completed]
        found = [p for p in found if p.is_file()]
        if found:
            grids.append((s.name, found[0]))
    if not grids:
        return None
    cols = min(4, len(grids))
    rows = (len(grids) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, path) in zip(axes.flat, grids, strict=False):
        ax.imshow(mpimg.imread(path), cmap="gray")
        ax.set_title(name, fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, out / "samples.png")


def make_report(root: Path, out: Path | None = None) -> dict[str, Any]:
    """Write the tables, plots and contact sheet; returns what was written."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory; pass a multirun directory")
    settings = load_settings(root)
    out = out or root / "report"
    out.mkdir(parents=True, exist_ok=True)
    metrics = metric_names(settings)
    written: dict[str, Any] = {"settings": len(settings), "metrics": metrics, "files": []}
    if metrics:
        rows = write_tables(settings, metrics, out)
        written["files"] += [str(out / "report.md"), str(out / "report.csv")]
        for m in metrics:
            written["files"].append(str(plot_by_setting(rows, m, out)))
            by_step = plot_by_step(settings, m, out)
            if by_step is not None:
                written["files"].append(str(by_step))
    else:
        write_tables(settings, [], out)
        written["files"] += [str(out / "report.md"), str(out / "report.csv")]
    sheet = contact_sheet(settings, out)
    if sheet is not None:
        written["files"].append(str(sheet))
    written["failed_runs"] = [r["run_dir"] for s in settings for r in s.failed]
    return written


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="python -m gan_lab.report", description=__doc__)
    parser.add_argument("multirun_dir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="default: <multirun_dir>/report")
    args = parser.parse_args(argv)
    written = run_user_errors_as_one_line(lambda: make_report(args.multirun_dir, args.out))
    print(json.dumps(written, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
