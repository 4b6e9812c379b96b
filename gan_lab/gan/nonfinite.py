"""The NaN/inf policy of GANModule, kept on the device between host checks.

A non-finite loss must never reach the weights. Checking ``bool(torch.isfinite(loss))`` per
update is a host synchronization per update, which on a GPU stalls the launch queue twice per
step. Instead, with an optimizer whose step takes a device-side ``found_inf`` flag (fused Adam,
as ``torch.amp.GradScaler`` uses it), the flag skips the update on the device, and this record
of the non-finite losses is read on the host only at logging intervals, before a checkpoint is
written and when training ends: then ``stop`` raises (before that checkpoint) and ``skip``
counts the skipped updates.
"""

from __future__ import annotations

from typing import Any

import torch

from gan_lab.errors import UserError

POLICIES = ("stop", "skip")
LOSS_NAMES = ("the discriminator loss", "the generator loss")


def nonfinite_error(name: str, value: float, step: int) -> UserError:
    return UserError(
        f"{name} became {value} at generator step {step}: training stopped before using it, "
        "checkpoints hold the last good weights; lower optimizer.lr, or set "
        "on_nonfinite=skip to skip such steps"
    )


class NonfiniteRecord:
    """Non-finite losses since the last host check, as device tensors: their count, and the
    first one's generator step, value and loss (index into :data:`LOSS_NAMES`)."""

    def __init__(self, policy: str) -> None:
        if policy not in POLICIES:
            raise UserError(f"module.on_nonfinite must be one of {list(POLICIES)}, got {policy!r}")
        self.policy = policy
        self.skipped = 0  # host count of skipped updates, as of the last check
        self._pending: dict[str, torch.Tensor] | None = None

    def add(self, bad: torch.Tensor, loss: torch.Tensor, which: int, step: int) -> torch.Tensor:
        """Record a device bool ``bad`` for ``loss``; no host sync. Returns the device flag that
        skips this update: ``bad`` itself under ``skip``; under ``stop``, whether any loss since
        the last check was bad, so the weights stay the last good ones until the check raises."""
        if self._pending is None:
            zero = torch.zeros((), dtype=torch.long, device=bad.device)
            self._pending = {"count": zero, "step": zero - 1, "which": zero,
                             "value": torch.zeros((), device=bad.device)}  # fmt: skip
        rec = self._pending
        first = bad & (rec["count"] == 0)
        rec["step"] = torch.where(first, step, rec["step"])
        rec["value"] = torch.where(first, loss.detach().float(), rec["value"])
        rec["which"] = torch.where(first, which, rec["which"])
        rec["count"] = rec["count"] + bad.long()
        return rec["count"] > 0 if self.policy == "stop" else bad

    def check(self) -> None:
        """Read the record on the host (one sync): ``stop`` raises for the first non-finite
        loss, ``skip`` adds the skipped updates to :attr:`skipped`."""
        rec, self._pending = self._pending, None
        if rec is None:
            return
        parts = [rec[k].double() for k in ("count", "step", "value", "which")]
        count, step, value, which = torch.stack(parts).tolist()
        if count == 0:
            return
        if self.policy == "stop":
            raise nonfinite_error(LOSS_NAMES[int(which)], value, int(step))
        self.skipped += int(count)


def guarded_update(module: Any, optimizer: Any, loss: torch.Tensor, which: int) -> None:
    """One update of ``module``'s (a GANModule) ``optimizer`` from ``loss``, never applying a
    non-finite one.

    With a ``found_inf``-capable optimizer (``_step_supports_amp_scaling``: fused Adam) the
    skip happens on the device: the fused kernel leaves weights, moments and step count
    untouched when the flag is set, and the loss goes into ``module.nonfinite`` for the next
    host check. Under DDP the flag is OR-ed over ranks first, so every rank skips alike. Under
    16-bit precision the GradScaler passes its own flag (inf/NaN gradients) and backs off.
    Other optimizers: a host check of the loss before the update.
    """
    optimizer.zero_grad(set_to_none=True)
    raw = getattr(optimizer, "optimizer", optimizer)  # under LightningOptimizer
    if not getattr(raw, "_step_supports_amp_scaling", False):
        if _finite_on_host(module, loss, LOSS_NAMES[which]):
            module.manual_backward(loss)
            optimizer.step()
        else:
            _count_skipped_step(optimizer)
        return
    bad = ~torch.isfinite(loss.detach()).all()
    if module.trainer.world_size > 1 and torch.distributed.is_initialized():
        flag = bad.to(torch.int32)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        bad = flag.bool()
    skip = module.nonfinite.add(bad, loss, which, module.generator_steps)
    module.manual_backward(loss)
    if getattr(module.trainer.precision_plugin, "scaler", None) is not None:
        optimizer.step()
        return
    raw.grad_scale, raw.found_inf = None, skip.float()
    try:
        optimizer.step()
    finally:
        del raw.grad_scale, raw.found_inf


def _finite_on_host(module: Any, loss: torch.Tensor, name: str) -> bool:
    """False if ``loss`` is NaN/inf on any rank (then no rank steps: DDP stays in sync); with
    ``on_nonfinite=stop`` it raises before any optimizer step. One host sync."""
    bad = not bool(torch.isfinite(loss.detach()).all())
    bad = module.trainer.strategy.reduce_boolean_decision(bad, all=False)
    if not bad:
        return True
    if module.nonfinite.policy == "stop":
        raise nonfinite_error(name, loss.item(), module.generator_steps)
    module.nonfinite.skipped += 1
    return False


def _count_skipped_step(optimizer: Any) -> None:
    """Count a skipped update as a step without touching the weights.

    Lightning's global_step counts ``optimizer.step()`` calls; a skipped update must count too,
    or generator steps (global_step / (n_disc + 1)) and the step budget would drift. These are
    the hooks LightningOptimizer.step itself calls around the real step.
    """
    optimizer._on_before_step()
    optimizer._on_after_step()
