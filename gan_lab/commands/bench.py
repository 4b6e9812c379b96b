"""Benchmark gan_lab on this machine: ``python -m gan_lab.bench [key=value ...]``.

One process measures, side by side (options in ``conf/bench.yaml``):

1. ``train``: images/s of GANModule under Lightning against a plain PyTorch loop over the very
   same generator, discriminator, optimizer settings, loss and batches, alternating A B A B.
2. ``precision``: fp32 / bf16-mixed (/ 16-mixed on CUDA) x channels_last x torch.compile, as
   users turn them on (``trainer.precision``, ``channels_last``, ``compile``).
3. ``data``: images/s of gan_lab's data path against a torchvision-style PIL pipeline over the
   same images, and the share of Lightning's step time spent waiting for data.
4. ``eval``: images/s of the feature extractors, and the real-statistics cost of a validation
   with a cold and with a warm cache.
5. ``flops``: model FLOPs per training image (torch.utils.flop_counter), achieved FLOP/s and
   their fraction of a matmul peak measured in the same run.
6. ``knn`` (only when named): time and peak memory of precision/recall/density/coverage at
   ``knn_sizes`` samples of ``knn_dim``-d features.
7. ``peer`` (only when named, with ``peer_script``): gan_lab.train against pytorch/examples'
   dcgan/main.py as whole processes, long run minus short run; the ratio is the headline.

It prints a table and writes JSON with the machine (device, threads, versions), saved after
every row. A training setting that fails (e.g. a compile mode) is a row with its error, and the
command exits 1 once the others have run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from gan_lab.commands.cli import run_user_errors_as_one_line
from gan_lab.config import CONF_DIR
from gan_lab.errors import UserError
from gan_lab.gan.bench import run
from gan_lab.gan.bench.sections import failed_settings
from gan_lab.gan.fit import route_lightning_logs
from gan_lab.io import atomic_write


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# gan_lab bench: {m['device_name']} ({m['device']}, {m['threads']} threads), "
             f"torch {m['torch']}, lightning {m['lightning']}", ""]  # fmt: skip
    rows = result.get("train", []) + result.get("precision", [])
    if rows:
        lines += ["| model | precision | channels_last | compile | gan_lab img/s | plain img/s |"
                  " ratio | data wait | startup s | peak MB |", "|" + " --- |" * 10]  # fmt: skip
        for r in rows:
            if "error" in r:  # a setting that did not run here (e.g. a compile mode)
                lines.append(f"| {r['name']} | {r['precision']} | {r['channels_last']} | "
                             f"{r['compile']} | failed: {r['error']} |" + " |" * 5)  # fmt: skip
                continue
            lines.append(
                f"| {r['name']} | {r['precision']} | {r['channels_last']} | {r['compile']} | "
                f"{r['lightning_images_per_second']:.0f} | {r['plain_images_per_second']:.0f} | "
                f"{r['ratio']:.3f} | {100 * r['data_wait_share']:.1f}% | "
                f"{r['startup_seconds']:.1f} | {r['peak_memory_mb']:.0f} |"
            )
    memory = result.get("memory")
    if isinstance(memory, dict):
        lines.append(f"\nlargest batch: {memory['skipped']}")
    for r in memory if isinstance(memory, list) else []:
        if "error" in r:
            lines.append(f"\nlargest batch {r['name']} {r['precision']}: failed: {r['error']}")
            continue
        limit = " (the search limit)" if r["at_search_limit"] else ""
        lines.append(f"\nlargest batch {r['name']} {r['precision']}: {r['largest_batch']}{limit}, "
                     f"peak {r['peak_memory_mb']:.0f} MB")  # fmt: skip
    for r in result.get("data", []):
        ours, pil = r["gan_lab_images_per_second"], r["torchvision_pil_images_per_second"]
        lines.append(
            f"\ndata {r['dataset']}: gan_lab {ours:.0f} img/s, torchvision PIL {pil:.0f} img/s"
        )
    if "eval" in result:
        items = result["eval"].items()
        lines.append("\neval: " + ", ".join(
            f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in items))  # fmt: skip
    if "flops" in result:
        f = result["flops"]
        lines.append(f"\nmatmul peak: fp32 {f['matmul_peak_fp32'] / 1e9:.1f} GFLOP/s, "
                     f"bf16 {f['matmul_peak_bf16'] / 1e9:.1f} GFLOP/s")  # fmt: skip
        for r in f["models"]:
            text = f"{r['name']}: {r['flops_per_image'] / 1e9:.3f} GFLOP per training image"
            if "achieved_flops" in r:
                text += (f", achieved {r['achieved_flops'] / 1e9:.1f} GFLOP/s = "
                         f"{100 * r['fraction_of_fp32_peak']:.0f}% of fp32 peak")  # fmt: skip
            lines.append(text)
    for r in result.get("knn", []):
        lines.append(f"\nprecision/recall/density/coverage {r['samples']} x {r['samples']} "
                     f"({r['dim']}-d, {r['dtype']}, blocks <= {r['memory_mb_bound']:.0f} MB): "
                     f"{r['seconds']:.1f} s, peak {r['peak_above_inputs_mb']:.0f} MB above the "
                     f"{r['inputs_mb']:.0f} MB of features")  # fmt: skip
    if "peer" in result:
        r = result["peer"]
        lines.append(f"\npeer ({r['device']}, batch {r['batch_size']}, {r['image_size']} px, "
                     f"{r['images_differential']['peer']} images long minus short): gan_lab "
                     f"{r['gan_lab_images_per_second']:.1f} img/s, "
                     f"{Path(r['peer_script']).name} {r['peer_images_per_second']:.1f} img/s, "
                     f"ratio {r['ratio']:.2f}")  # fmt: skip
    for r in result.get("profile", []):
        lines.append(f"\nprofile {r['name']} {r['precision']} channels_last={r['channels_last']} "
                     f"({r['steps']} steps; trace {r['trace']}):")  # fmt: skip
        lines += [f"  {100 * op['share']:5.1f}%  {op['op']} ({op['calls']} calls)"
                  for op in r["top_ops"]]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``gan-lab-bench``)."""
    args = sys.argv[1:] if argv is None else argv

    def go() -> tuple[dict[str, Any], Path]:
        try:
            with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
                bench = compose("bench", overrides=args)
        except Exception as err:
            first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
            raise UserError(f"bad arguments ({first}); see conf/bench.yaml") from err
        route_lightning_logs()
        out = Path(bench.out)

        def save(result: dict[str, Any]) -> None:  # after every row: a cut-short run keeps them
            blob = (json.dumps(result, indent=2, default=str) + "\n").encode()
            atomic_write(out, lambda f: f.write(blob))

        return run(bench, save), out

    result, out = run_user_errors_as_one_line(go)
    print(table(result))
    print(f"\nwritten: {out}")
    failed = failed_settings(result)
    if failed:
        names = ", ".join(f"{r['name']} {r['precision']} compile={r['compile']}" for r in failed)
        print(f"error: {len(failed)} bench settings failed ({names}); their rows say why",
              file=sys.stderr)  # fmt: skip
        sys.exit(1)


if __name__ == "__main__":
    main()
