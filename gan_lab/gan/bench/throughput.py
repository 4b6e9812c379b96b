"""Throughput outside the training step: the data path, the feature extractors and a
validation's real statistics, and the FLOPs of a training step against a matmul peak."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from gan_lab.errors import UserError
from gan_lab.gan.bench.setup import (
    current_memory_mb,
    peak_memory_mb,
    quiet_trainer,
    ready_datamodule,
    reset_peak_memory,
    sync,
    training_config,
)
from gan_lab.gan.bench.training import plain_segment
from gan_lab.gan.fit import build_module
from gan_lab.metrics.prdc import prdc


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
    from gan_lab.metrics.build import build_validation_metrics

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


def knn_metrics(num: int, bench: DictConfig, device: torch.device) -> dict[str, Any]:
    """Time and peak memory of precision/recall/density/coverage on ``num`` real and ``num``
    generated random ``knn_dim``-d features, from scratch (no cached radii), in row blocks of
    at most ``knn_memory_mb``. Memory: the peak above what the two feature sets already hold."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(num, bench.knn_dim, generator=g).to(device)
    fake = (torch.randn(num, bench.knn_dim, generator=g) * 1.02 + 0.01).to(device)
    reset_peak_memory(device)
    before = current_memory_mb(device)
    sync(device)
    start = time.perf_counter()
    values = prdc(real, fake, memory_mb=bench.knn_memory_mb, dtype=bench.knn_dtype)
    sync(device)
    seconds = time.perf_counter() - start
    return {"samples": num, "dim": bench.knn_dim, "dtype": bench.knn_dtype,
            "memory_mb_bound": bench.knn_memory_mb, "seconds": seconds,
            "inputs_mb": 2 * real.numel() * 4 / 2**20,
            "peak_above_inputs_mb": peak_memory_mb(device) - before, **values}  # fmt: skip
