"""DiffAugment: shapes, dtypes, gradients, each op's effect, the RNG it draws from, memory
formats and policy validation."""

from __future__ import annotations

import pytest
import torch

from gan_lab.errors import UserError
from gan_lab.gan import augment
from gan_lab.gan.augment import DiffAugment


def _images(n=4, c=3, size=16, dtype=torch.float32):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0),
                      dtype=dtype) * 2 - 1  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_diffaugment_keeps_shape_dtype_and_passes_gradients(dtype):
    x = _images(dtype=dtype).requires_grad_(True)
    torch.manual_seed(0)
    out = DiffAugment()(x)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    out.float().square().sum().backward()
    assert torch.isfinite(x.grad.float()).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("op", ["brightness", "saturation", "contrast", "translation", "cutout"])
def test_each_op_changes_the_image(op):
    x = _images()
    changed = []
    for seed in range(5):
        torch.manual_seed(seed)
        changed.append(not torch.equal(getattr(augment, op)(x), x))
    assert any(changed)


def test_translation_fills_with_zeros_and_cutout_zeroes_a_square():
    x = torch.ones(64, 1, 16, 16)
    torch.manual_seed(0)
    shifted = augment.translation(x)
    zero_rows = (shifted == 0).all(dim=3).sum(dim=(1, 2))
    assert zero_rows.max() == 2 and zero_rows.min() == 0  # shifts up to 16 / 8 = 2 pixels
    assert set(shifted.unique().tolist()) == {0.0, 1.0}
    cut = augment.cutout(x)
    zeros = (cut == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 64 and zeros.min() >= 16  # an 8x8 square, clipped at the edges


def test_diffaugment_draws_from_the_global_rng():
    x = _images()
    torch.manual_seed(3)
    a = DiffAugment()(x)
    torch.manual_seed(3)
    assert torch.equal(DiffAugment()(x), a)
    assert not torch.equal(DiffAugment()(x), a)


def test_diffaugment_channels_last_input():
    x = _images()
    torch.manual_seed(1)
    expected = DiffAugment()(x)
    torch.manual_seed(1)
    out = DiffAugment()(x.contiguous(memory_format=torch.channels_last))
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("policy", ["color,zoom", "", "color,,cutout", ["translation", "x"]])
def test_diffaugment_policy_is_checked(policy):
    if policy == "color,,cutout":
        assert DiffAugment(policy).policy == ["color", "cutout"]
        return
    with pytest.raises(UserError, match="augment.policy") as err:
        DiffAugment(policy)
    assert "color, translation, cutout" in str(err.value) and "\n" not in str(err.value)
