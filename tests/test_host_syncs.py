"""No host synchronization in a training step outside logging intervals (issue 14).

On CPU there is no device queue to stall, so this counts what would be a sync on CUDA: every
tensor -> Python conversion (``.item()``, ``bool()``, ``float()``, ``.tolist()``, ...) made
while a training batch runs, through the real config path (``gan_lab.gan.fit``: Lightning's
progress bar and CSV logger included). GPU tests (test_gpu.py) check the same promise with
``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import collections

import lightning as L
import torch
from conftest import SHARED_DATA, compose_config

import gan_lab.gan.fit as fit_module

CONVERSIONS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy")
STEPS, LOG_EVERY = 12, 5


def _conversions_per_batch(monkeypatch, tmp_path, session_data_dir, overrides) -> dict:
    counts: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    batch: list[int | None] = [None]

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapped(self, *args, **kwargs):
            if batch[0] is not None:
                counts[batch[0]][name] += 1
            return original(self, *args, **kwargs)

        return wrapped

    class MarkBatches(L.Callback):
        def on_train_batch_start(self, trainer, module, data, batch_idx):
            batch[0] = batch_idx
            counts[batch_idx]  # noqa: B018  (a batch without conversions counts as 0)

        def on_train_batch_end(self, *args):
            batch[0] = None

    for name in CONVERSIONS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    build_trainer = fit_module.build_trainer
    monkeypatch.setattr(
        fit_module, "build_trainer",
        lambda cfg, callbacks, loggers: build_trainer(cfg, [*callbacks, MarkBatches()], loggers),
    )  # fmt: skip
    cfg = compose_config(
        ["metrics=none", "logger=csv", "trainer=cpu", f"trainer.max_steps={STEPS}",
         f"trainer.log_every_n_steps={LOG_EVERY}", "trainer.enable_progress_bar=true",
         "data.batch_size=16", "callbacks.last_checkpoint.every_n_generator_steps=1000",
         f"paths.data_dir={session_data_dir}", f"paths.data_mirrors={SHARED_DATA}", *overrides],
        tmp_path,
    )  # fmt: skip
    fit_module.fit(cfg, tmp_path)
    return {b: sum(c.values()) for b, c in counts.items()}


def _is_plain(batch_idx: int) -> bool:
    """Not a logging batch (generator step 1 or a multiple of LOG_EVERY) and not the last."""
    step = batch_idx + 1
    return step != 1 and step % LOG_EVERY != 0 and step != STEPS


def test_no_host_conversions_in_plain_training_steps(monkeypatch, tmp_path, session_data_dir):
    counts = _conversions_per_batch(monkeypatch, tmp_path, session_data_dir, [])
    assert len(counts) == STEPS
    assert {b: n for b, n in counts.items() if _is_plain(b)} == dict.fromkeys(
        (b for b in counts if _is_plain(b)), 0
    )
    assert counts[LOG_EVERY - 1] > 0  # logging batches do read the device: the counter counts


def test_the_host_checked_fallback_syncs_each_update(monkeypatch, tmp_path, session_data_dir):
    """optimizer.fused=false (an optimizer without found_inf): a host check per D and G update."""
    counts = _conversions_per_batch(
        monkeypatch, tmp_path, session_data_dir, ["optimizer.fused=false"]
    )
    assert all(counts[b] >= 2 for b in counts if _is_plain(b))
