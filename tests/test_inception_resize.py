"""Inception's ``resize`` option: ``legacy`` (torch-fidelity's TF1 bilinear, unchanged) and
``clean`` (clean-fid's PIL bicubic on float channels), on random weights in torch-fidelity's
layout (the features are meaningless; only equalities between code paths are checked)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_lab.errors import UserError
from gan_lab.metrics.extractors import InceptionExtractor
from gan_lab.metrics.extractors import inception_layout as iwl
from gan_lab.metrics.extractors.inception import _forward_resized, clean_resize
from gan_lab.metrics.extractors.inception_weights import resolve_inception_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> iwl.InceptionWeights:
    """Random weights in torch-fidelity's layout that keep the input's signal: He-initialised
    convs and identity batch norms, and a finite logits layer so logits are compared too.

    The shared ``fixtures_data.install_offline_inception`` weights (and ``fake_official`` of
    test_inception_weights) scale every tensor, batch-norm gammas included, by ~0.05, which
    collapses the signal: their features are the same for every image, so they could not tell
    two resizes (or two layer orders) apart."""
    layout, _ = iwl.reference_layout()
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape, dtype in layout:
        if key.endswith("conv.weight") or key == "fc.weight":
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith(("bn.weight", "running_var")):
            state[key] = torch.ones(shape)
        else:  # bn.bias, running_mean, fc.bias, num_batches_tracked
            state[key] = torch.zeros(shape, dtype=dtype)
    path = tmp_path_factory.mktemp("inception_resize") / "he-inception.pth"
    torch.save(state, path)
    w = resolve_inception_weights(path)
    assert w.has_logits
    return w


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("size", [32, 28])
def test_clean_resize_equals_cleanfid(size: int) -> None:
    resize = pytest.importorskip("cleanfid.resize")
    fn = resize.build_resizer("clean")
    g = torch.Generator().manual_seed(size)
    uint8 = torch.randint(0, 256, (3, 3, size, size), generator=g, dtype=torch.uint8)
    got = clean_resize(uint8)
    assert got.dtype == torch.float32 and got.shape == (3, 3, 299, 299)
    want = np.stack([fn(img) for img in uint8.permute(0, 2, 3, 1).numpy()])  # N, H, W, C
    want = torch.from_numpy(want).permute(0, 3, 1, 2)
    # Same PIL calls on the same float32 values: bit-identical (measured max diff 0.0).
    assert torch.equal(got, want)
    assert got.min() >= 0 and got.max() <= 255


def test_float_forward_reproduces_torch_fidelity(weights, images) -> None:
    """The layer sequence copied in _forward_resized is torch-fidelity's: fed the legacy
    resize by hand, it gives _torch_fidelity_forward's features and logits."""
    from torchmetrics.image.fid import interpolate_bilinear_2d_like_tensorflow1x

    net = InceptionExtractor(weights).net
    uint8 = (images * 255).byte()
    with torch.no_grad():
        want = net._torch_fidelity_forward(uint8)
        x = interpolate_bilinear_2d_like_tensorflow1x(
            uint8.float(), size=(299, 299), align_corners=False
        )
        got = _forward_resized(net, (x - 128) / 128, with_logits=True)
    assert len(got) == len(want) == 2
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        # Same ops on the same tensors: measured max abs diff 0.0 (features up to ~1.4).
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_legacy_unchanged_clean_differs(weights, images) -> None:
    legacy = InceptionExtractor(weights)
    clean = InceptionExtractor(weights, resize="clean")
    assert (legacy.resize, clean.resize) == ("legacy", "clean")
    assert legacy.identity == f"inception-{weights.sha256[:16]}"
    assert clean.identity == legacy.identity + "-clean"
    out_legacy, out_clean = legacy(images), clean(images)
    with torch.no_grad():
        direct = legacy.net._torch_fidelity_forward((images * 255).byte())
    assert torch.equal(out_legacy["features"], direct[0])
    assert torch.equal(out_legacy["logits"], direct[1])
    assert out_clean["features"].shape == (2, 2048) and out_clean["logits"].shape == (2, 1008)
    # The weights see the input (two images, two feature vectors), and the resizes differ.
    feats = out_legacy["features"]
    assert (feats[0] - feats[1]).abs().max() > 1e-2 * feats.abs().max()
    # Measured: clean vs legacy max abs diff 0.34 on features up to 1.4.
    assert (out_clean["features"] - feats).abs().max() > 1e-2 * feats.abs().max()
    # Grey images take the same channel-expansion path in both modes.
    assert clean(images[:, :1])["features"].shape == (2, 2048)


def test_bad_resize_is_user_error(weights) -> None:
    with pytest.raises(UserError) as err:
        InceptionExtractor(weights, resize="bicubic")
    msg = str(err.value)
    assert "\n" not in msg and "metrics.resize" in msg
    assert "legacy" in msg and "clean" in msg
