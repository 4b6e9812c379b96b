"""Training measurements: GANModule under Lightning against a plain PyTorch loop over the same
networks and batches, the largest batch that fits, and a profile of the training step."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from gan_lab.gan.bench.setup import (
    fresh_setting,
    peak_memory_mb,
    quiet_trainer,
    reset_peak_memory,
    sync,
)


class StepTimer(L.Callback):
    """Times batches ``warmup`` .. end inside Lightning, and the gaps between them (data)."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device = warmup, device
        self.start = self.end = None
        self.fit_start = time.perf_counter()
        self.batches = 0
        self.wait = 0.0
        self._last_end: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if batch_idx == self.warmup:
            sync(self.device)
            self.start = now = time.perf_counter()
        elif batch_idx > self.warmup and self._last_end is not None:
            self.wait += now - self._last_end  # fetching the batch + loop bookkeeping

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            sync(self.device)
            self.end = self._last_end = time.perf_counter()
            self.batches += 1


def lightning_segment(module, datamodule, cfg: DictConfig, steps: int, warmup: int,
                      device: torch.device) -> dict[str, float]:  # fmt: skip
    timer = StepTimer(warmup, device)
    trainer = quiet_trainer(device, precision=cfg.trainer.precision, callbacks=[timer],
                            max_steps=(steps + warmup) * (cfg.module.n_disc + 1),
                            limit_val_batches=0, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    seconds = timer.end - timer.start
    images = timer.batches * datamodule.batch_size
    return {"images_per_second": images / seconds, "data_wait_share": timer.wait / seconds,
            "startup_seconds": timer.start - timer.fit_start}  # fmt: skip


def plain_segment(module, datamodule, cfg: DictConfig, steps: int, warmup: int,
                  device: torch.device) -> dict[str, float]:  # fmt: skip
    """The same step as GANModule.training_step, written as a hand-made PyTorch loop."""
    G, D, objective = module.generator, module.discriminator, module.objective
    opt_g = instantiate(cfg.optimizer.generator)(G.parameters())
    opt_d = instantiate(cfg.optimizer.discriminator)(D.parameters())
    precision = str(cfg.trainer.precision)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" else None
    G.train(), D.train()
    fmt = torch.channels_last if module.channels_last else torch.contiguous_format

    def backward_step(value: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        if scaler is None:
            value.backward()
            opt.step()
        else:
            scaler.scale(value).backward()
            scaler.step(opt)
            scaler.update()

    batches = _cycle(datamodule.train_dataloader())
    latents = lambda n: torch.randn(n, module.latent_dim, device=device)  # noqa: E731
    start, d_step = None, 0
    for i in range(steps + warmup):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        real = datamodule.on_after_batch_transfer(next(batches).to(device), 0)
        real = real.contiguous(memory_format=fmt)
        D.requires_grad_(True)
        fake = None
        if module.reuse_fakes:  # as GANModule: one G forward for the D and the G step
            with autocast():
                fake = G(latents(real.size(0)))
        for _ in range(cfg.module.n_disc):
            with autocast():
                d_loss, _ = objective.discriminator_loss(G, D, real, latents, d_step, fake)
            d_step += 1
            opt_d.zero_grad(set_to_none=True)
            backward_step(d_loss, opt_d)
        D.requires_grad_(False)  # as Lightning's toggled_optimizer: no D gradients in G's step
        with autocast():
            g_loss, _ = objective.generator_loss(G, D, real, latents, fake)
        opt_g.zero_grad(set_to_none=True)
        backward_step(g_loss, opt_g)
    D.requires_grad_(True)
    sync(device)
    seconds = time.perf_counter() - start
    return {"images_per_second": steps * datamodule.batch_size / seconds}


def _cycle(loader) -> Iterator[torch.Tensor]:
    while True:
        yield from loader


def compare_training(name: str, cfg: DictConfig, bench: DictConfig,
                     device: torch.device) -> dict[str, Any]:  # fmt: skip
    """Lightning (A) and the plain loop (B) over the same networks and data, A B A B."""
    reset_peak_memory(device)
    datamodule, module = fresh_setting(cfg)
    module.to(device)
    module.configure_model()
    runs: dict[str, list[dict[str, float]]] = {"lightning": [], "plain": []}
    for _ in range(bench.repeats):
        runs["lightning"].append(
            lightning_segment(module, datamodule, cfg, bench.steps, bench.warmup, device)
        )
        module.to(device)
        runs["plain"].append(
            plain_segment(module, datamodule, cfg, bench.steps, bench.warmup, device))  # fmt: skip
    ips = {k: [r["images_per_second"] for r in v] for k, v in runs.items()}
    lightning, plain = _mean(ips["lightning"]), _mean(ips["plain"])
    return {
        "name": name, "precision": str(cfg.trainer.precision),
        "channels_last": module.channels_last, "compile": cfg.module.compile,  # as applied
        "reuse_fakes": module.reuse_fakes, "batch_size": int(cfg.data.batch_size),
        "lightning_images_per_second": lightning,
        "plain_images_per_second": plain, "ratio": lightning / plain,
        "segments": ips, "data_wait_share": _mean([r["data_wait_share"] for r in
                                                   runs["lightning"]]),
        # Fit start to the first timed batch of the first segment: data setup, warm-up steps
        # and, with compile=true, compilation.
        "startup_seconds": runs["lightning"][0]["startup_seconds"],
        "peak_memory_mb": peak_memory_mb(device),
    }  # fmt: skip


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# ---------------------------------------------------------------------------- memory
def largest_batch(name: str, cfg: DictConfig, bench: DictConfig,
                  device: torch.device) -> dict[str, Any]:  # fmt: skip
    """The largest training batch that fits, by Lightning's batch-size finder (binary search on
    out-of-memory errors), and the peak memory of the search."""
    from lightning.pytorch.tuner import Tuner

    reset_peak_memory(device)
    datamodule, module = fresh_setting(cfg)
    with tempfile.TemporaryDirectory() as root:  # the finder's temporary checkpoint
        trainer = quiet_trainer(device, precision=cfg.trainer.precision, default_root_dir=root,
                                limit_val_batches=0, num_sanity_val_steps=0)  # fmt: skip
        found = Tuner(trainer).scale_batch_size(
            module, datamodule=datamodule, mode="binsearch", init_val=bench.batch_size,
            steps_per_trial=2 * (cfg.module.n_disc + 1),  # optimizer steps: 2 batches per trial
            max_trials=bench.largest_batch_trials, max_val=bench.largest_batch_max,
            margin=0.0,  # the largest that fit, not a safety-trimmed one
        )  # fmt: skip
    return {"name": name, "precision": str(cfg.trainer.precision),
            "channels_last": bool(cfg.module.channels_last), "largest_batch": found,
            "at_search_limit": found >= bench.largest_batch_max,
            "peak_memory_mb": peak_memory_mb(device)}  # fmt: skip


# ---------------------------------------------------------------------------- profile
def profile_training(name: str, cfg: DictConfig, bench: DictConfig, device: torch.device,
                     trace: Path) -> dict[str, Any]:  # fmt: skip
    """torch.profiler over a few GANModule steps under Lightning: the operators that take the
    time (self time, as a share of the profiled total), and a Chrome trace to open."""
    from torch.profiler import ProfilerActivity, profile

    datamodule, module = fresh_setting(cfg)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])  # fmt: skip
    lightning_segment(module, datamodule, cfg, 1, bench.warmup, device)  # warm-up, unprofiled
    with profile(activities=activities) as prof:
        lightning_segment(module, datamodule, cfg, bench.profile_steps, 0, device)
    trace.parent.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(trace))
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)
    total = sum(getattr(e, attr) for e in events) or 1.0
    top = [{"op": e.key, "share": getattr(e, attr) / total, "calls": e.count}
           for e in events[: bench.profile_top]]  # fmt: skip
    return {"name": name, "precision": str(cfg.trainer.precision),
            "channels_last": bool(cfg.module.channels_last), "steps": bench.profile_steps,
            "top_ops": top, "trace": str(trace)}  # fmt: skip
