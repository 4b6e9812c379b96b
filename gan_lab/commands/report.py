"""Tables, plots and a contact sheet from a sweep: ``python -m gan_lab.report <multirun dir>``.

Reads every ``summary.json`` below the directory. Runs are grouped into settings by their
command-line overrides, less ``seed`` (the repeats) and Hydra's own keys. Writes into
``<dir>/report/`` (or ``--out``):

- ``report.md`` and ``report.csv``: one row per setting, mean ± std over seeds of each final
  metric, the number of completed and failed runs; failed runs are listed with their errors;
- ``<metric>_by_setting.png``: the metric per setting with error bars (std over seeds);
- ``<metric>_by_step.png``: the metric against generator steps, mean over seeds per setting;
- ``precision_recall_<extractor>.png`` (runs with ``metrics.prdc=true``, and eval's): each
  setting as a point in the precision-recall plane, quality against coverage, which FID
  folds together;
- ``samples.png``: the newest sample grid of one run per setting, labelled.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from gan_lab.commands.cli import OneLineArgumentParser, run_user_errors_as_one_line
from gan_lab.errors import UserError
from gan_lab.gan.report_plots import (
    contact_sheet,
    plot_by_setting,
    plot_by_step,
    plot_precision_recall,
)
from gan_lab.gan.sweep import Setting, load_settings, metric_names, table_rows
from gan_lab.io import atomic_write


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
        for m in metrics:  # precision_<x> with its recall_<x>: the precision-recall plane
            if "precision_" in m and m.replace("precision_", "recall_", 1) in metrics:
                written["files"].append(str(plot_precision_recall(rows, m, out)))
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
