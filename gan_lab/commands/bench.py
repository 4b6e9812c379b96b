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

It prints a table and writes JSON with the machine (device, threads, versions).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan_lab.commands.cli import run_user_errors_as_one_line
from gan_lab.config import CONF_DIR
from gan_lab.errors import UserError
from gan_lab.gan.evaluate import pick_device
from gan_lab.gan.fit import build_module, route_lightning_logs
from gan_lab.gan.module import GANModule
from gan_lab.io import atomic_write


# ---------------------------------------------------------------------------- setup
def training_config(overrides: list[str], batch_size: int, precision: str = "32-true",
                    channels_last: bool = False, compile: bool = False) -> DictConfig:  # fmt: skip
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


# ---------------------------------------------------------------------------- training
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
        for _ in range(cfg.module.n_disc):
            with autocast():
                d_loss, _ = objective.discriminator_loss(G, D, real, latents, d_step)
            d_step += 1
            opt_d.zero_grad(set_to_none=True)
            backward_step(d_loss, opt_d)
        D.requires_grad_(False)  # as Lightning's toggled_optimizer: no D gradients in G's step
        with autocast():
            g_loss, _ = objective.generator_loss(G, D, real, latents)
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
        "channels_last": bool(cfg.module.channels_last), "compile": bool(cfg.module.compile),
        "batch_size": int(cfg.data.batch_size), "lightning_images_per_second": lightning,
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


# ---------------------------------------------------------------------------- data
def data_path(dataset: str, bench: DictConfig, device: torch.device) -> dict[str, Any]:
    """gan_lab's in-memory uint8 path vs a torchvision-style PIL + ToTensor + Normalize path."""
    from PIL import Image
    from torchvision import transforms

    cfg = training_config([f"data={dataset}"], bench.batch_size)
    datamodule = ready_datamodule(cfg)
    images = datamodule.train_images()

    def ours() -> Iterator[torch.Tensor]:
        for batch in datamodule.train_dataloader():
            yield datamodule.on_after_batch_transfer(batch.to(device), 0)

    channels = images.shape[1]
    mode = "L" if channels == 1 else "RGB"
    pipeline = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize([0.5] * channels, [0.5] * channels)]
    )

    class PILDataset(torch.utils.data.Dataset):
        """What torchvision's MNIST / CIFAR10 datasets do per item: array -> PIL -> tensor."""

        def __len__(self) -> int:
            return len(images)

        def __getitem__(self, i: int) -> torch.Tensor:
            array = images[i].permute(1, 2, 0).numpy()
            return pipeline(Image.fromarray(array[..., 0] if channels == 1 else array, mode))

    loader = torch.utils.data.DataLoader(PILDataset(), batch_size=bench.batch_size, shuffle=True,
                                         drop_last=True)  # fmt: skip

    def theirs() -> Iterator[torch.Tensor]:
        for batch in loader:
            yield batch.to(device)

    return {"dataset": dataset, "gan_lab_images_per_second": _read_rate(ours, bench, device),
            "torchvision_pil_images_per_second": _read_rate(theirs, bench, device)}  # fmt: skip


def _read_rate(batches: Callable[[], Iterator[torch.Tensor]], bench: DictConfig,
               device: torch.device) -> float:  # fmt: skip
    n = 0
    start = time.perf_counter()
    for i, batch in enumerate(batches()):
        n += batch.size(0)
        if i + 1 >= bench.data_batches:
            break
    sync(device)
    return n / (time.perf_counter() - start)


# ---------------------------------------------------------------------------- evaluation
def evaluation(bench: DictConfig, device: torch.device) -> dict[str, Any]:
    """Per extractor: its images/s, and a validation epoch's metrics with a cold and a warm
    real-statistics cache (GANModule under ``Trainer.validate``, as at each validation)."""
    from gan_lab.metrics.extractors import build_extractor

    cfg = training_config(list(bench.models[bench.eval_model]), bench.batch_size)
    datamodule = ready_datamodule(cfg)
    datamodule.val_samples = bench.eval_samples
    module = build_module(cfg)
    images = datamodule.val_images()[: bench.eval_images]
    out: dict[str, Any] = {"model": bench.eval_model, "validation_samples": bench.eval_samples}
    for name in bench.eval_extractors:
        try:
            extractor = build_extractor(name, datamodule=datamodule).to(device)
        except UserError as err:  # e.g. no Inception weights reachable
            out[f"{name}_unavailable"] = str(err)
            continue
        x = images.to(device).float() / 255
        with torch.no_grad():
            extractor(x[:8])  # warm-up
            sync(device)
            start = time.perf_counter()
            for chunk in x.split(64):
                extractor(chunk)
            sync(device)
        out[f"{name}_images_per_second"] = len(x) / (time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as stats:
            for cache in ("cold", "warm"):  # the same stats dir: the second run finds it
                seconds = validation_seconds(module, datamodule, name, Path(stats), device)
                out[f"{name}_validation_seconds_{cache}_cache"] = seconds["validation"]
                out[f"{name}_real_stats_seconds_{cache}_cache"] = seconds["real_stats"]
    return out


def validation_seconds(module, datamodule, extractor: str, stats_dir: Path,
                       device: torch.device) -> dict[str, float]:  # fmt: skip
    """Wall time of one validation epoch with metrics, and the real-statistics share of it."""
    from gan_lab.metrics.validation import build_validation_metrics

    metrics = build_validation_metrics(
        datamodule, num_samples=datamodule.val_samples, extractors=[extractor]
    )
    metrics.stats_dir = stats_dir
    real_seconds = 0.0
    real_outputs = metrics.real_outputs

    def timed_real_outputs(*args: Any) -> dict:
        nonlocal real_seconds
        start = time.perf_counter()
        result = real_outputs(*args)
        sync(device)
        real_seconds += time.perf_counter() - start
        return result

    metrics.real_outputs = timed_real_outputs
    trainer = quiet_trainer(device, callbacks=[metrics])
    start = time.perf_counter()
    trainer.validate(module, datamodule=datamodule, verbose=False)
    sync(device)
    return {"validation": time.perf_counter() - start, "real_stats": real_seconds}


# ---------------------------------------------------------------------------- FLOPs
def flops_per_image(cfg: DictConfig, device: torch.device) -> float:
    """FLOPs of one training step (D and G updates, fwd + bwd) per real image, fp32."""
    from torch.utils.flop_counter import FlopCounterMode

    datamodule = ready_datamodule(cfg)
    module = build_module(cfg).to(device)
    counter = FlopCounterMode(display=False)
    with counter:
        plain_segment(module, datamodule, cfg, steps=1, warmup=0, device=device)
    return counter.get_total_flops() / datamodule.batch_size


def matmul_peak(size: int, dtype: torch.dtype, device: torch.device, repeats: int = 5,
                min_seconds: float = 1.0) -> float:  # fmt: skip
    """FLOP/s of the fastest of at least ``repeats`` square matmuls (and ``min_seconds``)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    sync(device)
    best, n, begin = float("inf"), 0, time.perf_counter()
    while n < repeats or time.perf_counter() - begin < min_seconds:
        start = time.perf_counter()
        a @ b
        sync(device)
        best, n = min(best, time.perf_counter() - start), n + 1
    return 2 * size**3 / best


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


# ---------------------------------------------------------------------------- driver
def run(bench: DictConfig) -> dict[str, Any]:
    device = pick_device(bench.device)
    known = {"train", "precision", "memory", "data", "eval", "flops", "profile"}
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
    return result


def _log(row: dict[str, Any]) -> dict[str, Any]:
    print(json.dumps(row, default=str), file=sys.stderr, flush=True)
    return row


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# gan_lab bench: {m['device_name']} ({m['device']}, {m['threads']} threads), "
             f"torch {m['torch']}, lightning {m['lightning']}", ""]  # fmt: skip
    rows = result.get("train", []) + result.get("precision", [])
    if rows:
        lines += ["| model | precision | channels_last | compile | gan_lab img/s | plain img/s |"
                  " ratio | data wait | startup s | peak MB |", "|" + " --- |" * 10]  # fmt: skip
        for r in rows:
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
        result = run(bench)
        out = Path(bench.out)
        blob = (json.dumps(result, indent=2, default=str) + "\n").encode()
        atomic_write(out, lambda f: f.write(blob))
        return result, out

    result, out = run_user_errors_as_one_line(go)
    print(table(result))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
