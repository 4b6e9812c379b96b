"""The peer section: gan_lab.train against pytorch/examples' ``dcgan/main.py``, whole processes.

Both run as subprocesses on the same device with the same batch and image size, each twice:
a short and a long run. Their difference (images, seconds) is the training throughput with
startup, data preparation and teardown cancelled out, which is what a user waits for. The peer
script is not shipped with gan_lab: the user names their copy (``peer_script=``), e.g. from
``git clone https://github.com/pytorch/examples``.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from gan_lab.errors import UserError

# main.py prints one line per iteration: "[epoch/niter][i/len(dataloader)] Loss_D: ..."
PEER_ITERATION = re.compile(r"^\[(\d+)/(\d+)\]\[(\d+)/(\d+)\]", re.MULTILINE)


def peer_comparison(bench: DictConfig, device: torch.device) -> dict[str, Any]:
    """Images/s of gan_lab.train (its defaults, ``peer_gan_lab`` overrides) and of the peer
    script (``--dataset fake``), each as (long - short images) / (long - short seconds)."""
    script = _peer_script(bench.peer_script)
    short, long = bench.peer_epochs
    if not 0 < short < long:
        raise UserError(
            f"peer_epochs must be [short, long] with 0 < short < long, got {[short, long]}"
        )
    batch, per_epoch = bench.peer_batch_size, bench.peer_images_per_epoch
    batches_per_epoch = math.ceil(per_epoch / batch)
    # The first process to load torch from a cold disk cache starts slower than the rest; that
    # one-off cost must not land in one side's short run.
    _timed([sys.executable, "-c", "import torchvision, lightning, gan_lab.commands.train"],
           Path.cwd(), "importing torch")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="gan_lab_peer_") as tmp:
        seconds: dict[str, list[float]] = {"peer": [], "gan_lab": []}
        for epochs in (short, long):
            peer_s, iterations = _run_peer(
                script, epochs, bench, device, Path(tmp) / f"peer{epochs}"
            )
            if iterations != epochs * batches_per_epoch:
                raise UserError(
                    f"the peer ran {iterations} iterations in {epochs} epochs, not "
                    f"{epochs * batches_per_epoch}: set peer_images_per_epoch to the size of "
                    "its fake dataset"
                )
            seconds["peer"].append(peer_s)
            steps = epochs * batches_per_epoch  # the same batches as the peer
            out = Path(tmp) / f"gan_lab{epochs}"
            seconds["gan_lab"].append(_run_gan_lab(steps, bench, device, out))
    # The peer's epochs end with a partial batch; gan_lab trains whole batches only.
    images = {"peer": (long - short) * per_epoch,
              "gan_lab": (long - short) * batches_per_epoch * batch}  # fmt: skip
    rate = {side: images[side] / (s[1] - s[0]) for side, s in seconds.items()}
    return {
        "peer_script": str(script), "device": device.type, "batch_size": batch,
        "image_size": bench.peer_image_size, "epochs": [short, long],
        "images_differential": images, "seconds": seconds,
        "gan_lab_images_per_second": rate["gan_lab"], "peer_images_per_second": rate["peer"],
        "ratio": rate["gan_lab"] / rate["peer"], "gan_lab_overrides": list(bench.peer_gan_lab),
    }  # fmt: skip


def _peer_script(path: str | None) -> Path:
    if not path:
        raise UserError(
            "bench section peer needs peer_script=<path to pytorch/examples dcgan/main.py> "
            "(git clone https://github.com/pytorch/examples)"
        )
    script = Path(path).expanduser()
    if not script.is_file():
        raise UserError(f"peer_script={path}: no such file; give the path of dcgan/main.py")
    return script


def accelerator_flag(script: Path) -> str:
    """main.py's flag to train on the GPU: ``--accel`` (torch.accelerator's current device) in
    today's pytorch/examples, ``--cuda`` in older copies."""
    source = script.read_text(errors="replace")
    for flag in ("--accel", "--cuda"):
        if re.search(rf"""add_argument\(\s*['"]{flag}['"]""", source):
            return flag
    raise UserError(
        f"peer_script={script} has neither --accel nor --cuda, so it cannot train on the GPU; "
        "give the path of pytorch/examples' dcgan/main.py"
    )


def _timed(cmd: list[str], cwd: Path, what: str) -> tuple[float, str]:
    cwd.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = next((ln for ln in reversed(done.stderr.splitlines()) if ln.strip()), "")
        raise UserError(f"{what} failed (exit {done.returncode}): {last.strip()}")
    return seconds, done.stdout


def _run_peer(script: Path, epochs: int, bench: DictConfig, device: torch.device,
              out: Path) -> tuple[float, int]:  # fmt: skip
    cmd = [sys.executable, str(script), "--dataset", "fake", "--niter", str(epochs),
           "--batchSize", str(bench.peer_batch_size), "--imageSize", str(bench.peer_image_size),
           "--workers", str(bench.peer_workers), "--manualSeed", "0",
           "--outf", str(out)]  # fmt: skip
    if device.type != "cpu":
        cmd.append(accelerator_flag(script))
    seconds, stdout = _timed(cmd, out, f"the peer ({script.name})")
    return seconds, len(PEER_ITERATION.findall(stdout))


def _run_gan_lab(steps: int, bench: DictConfig, device: torch.device, out: Path) -> float:
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    cmd = [sys.executable, "-m", "gan_lab.train", *bench.peer_gan_lab,
           f"data.image_size={bench.peer_image_size}", f"data.batch_size={bench.peer_batch_size}",
           f"trainer.max_steps={steps}", "trainer.max_epochs=-1",
           f"trainer.accelerator={accelerator}", "trainer.enable_progress_bar=false",
           f"hydra.run.dir={out}"]  # fmt: skip
    seconds, _ = _timed(cmd, Path.cwd(), "gan_lab.train")
    return seconds
