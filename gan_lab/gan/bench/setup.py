"""What each benchmark measures on: the settings, as gan_lab.train builds them, and the machine.

A setting is the gan_lab.train config of one benchmarked combination (model, batch size,
precision, channels_last, compile) without logger, metrics or callbacks; the helpers here
build its datamodule and GANModule, a quiet Trainer, and read the device's clock and peak
memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import platform
import resource
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from gan_lab.config import CONF_DIR
from gan_lab.gan.fit import build_module
from gan_lab.gan.module import GANModule


def training_config(overrides: list[str], batch_size: int, precision: str = "32-true",
                    channels_last: bool = False,
                    compile: bool | str = False) -> DictConfig:  # fmt: skip
    """The gan_lab.train config of one benchmarked setting (no logger, metrics or callbacks)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[
            *overrides, "logger=none", "metrics=none", f"data.batch_size={batch_size}",
            f"trainer.precision={precision}", f"module.channels_last={channels_last}",
            f"module.compile={compile}", f"paths.output_dir={tempfile.gettempdir()}/gan_lab_bench",
        ])  # fmt: skip


def ready_datamodule(cfg: DictConfig) -> Any:
    """The setting's datamodule, its data prepared and loaded (in memory)."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def fresh_setting(cfg: DictConfig) -> tuple[Any, GANModule]:
    """Seeded datamodule and GANModule of one setting, as gan_lab.train builds them."""
    L.seed_everything(0, verbose=False)
    return ready_datamodule(cfg), build_module(cfg)


def machine(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        cpuinfo = Path("/proc/cpuinfo")
        if cpuinfo.is_file():
            for line in cpuinfo.read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    return {"device": device.type, "device_name": name, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "lightning": L.__version__,
            "python": platform.python_version()}  # fmt: skip


def quiet_trainer(device: torch.device, **kwargs: Any) -> L.Trainer:
    """A one-device Trainer without logger, checkpoints, progress bar or model summary."""
    return L.Trainer(accelerator=device.type, devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator peak, or on Linux the process's peak RSS (VmHWM)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    # Hand freed heap back to the OS first (glibc keeps it, and it would count as resident),
    # then "5" resets VmHWM to the current RSS (Linux >= 4.0, proc(5) clear_refs). Elsewhere
    # the peak stays the process's whole-life peak.
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def current_memory_mb(device: torch.device) -> float:
    """Memory in use now: CUDA allocated bytes, or the process's resident set (VmRSS)."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory since reset_peak_memory: CUDA allocated bytes, or the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
