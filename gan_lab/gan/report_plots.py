"""The figures of ``gan_lab.report``: a metric by setting and by step, the precision-recall
plane, and the contact sheet of sample grids. PNGs written atomically, matplotlib's Agg."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from gan_lab.gan.sweep import Setting
from gan_lab.io import atomic_write


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


def plot_precision_recall(rows: list[dict], precision: str, out: Path) -> Path:
    """Each setting at (recall, precision) with std-over-seeds error bars; ``precision``: the
    metric's name (``precision_domain``, ``eval_precision_inception``), whose recall is the
    same name with ``recall_``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = precision.replace("precision_", "recall_", 1)
    labels, key = tick_labels([r["setting"] for r in rows])
    fig, ax = plt.subplots(figsize=(5, 4.6))
    for row, label in zip(rows, labels, strict=True):
        if not row["runs"]:
            continue
        # One colour per setting, named in the legend: labels beside close points overlap.
        ax.errorbar(row[f"{recall}_mean"], row[f"{precision}_mean"], xerr=row[f"{recall}_std"],
                    yerr=row[f"{precision}_std"], fmt="o", capsize=3,
                    label=f"{label} (n={row['runs']})")  # fmt: skip
    ax.legend(title=key, fontsize=7, title_fontsize=7, loc="lower right")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"{recall} (share of real data reached)")
    ax.set_ylabel(f"{precision} (share of samples that look real)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    name = precision.replace("precision_", "precision_recall_", 1)
    return _save_figure(fig, out / f"{name}.png")


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
