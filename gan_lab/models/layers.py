"""Small layer factories shared by the architecture families."""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from gan_lab.errors import UserError

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": lambda: nn.GELU(),
    "silu": lambda: nn.SiLU(inplace=True),
}

# "spectral" is not a layer: it reparametrizes every conv / linear weight of the network (see
# apply_spectral_norm), so its norm2d is an identity.
NORMS = ("batch", "instance", "layer", "spectral", "none")

WEIGHTED_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def activation(name: str, knob: str) -> nn.Module:
    """A fresh activation module by name; ``knob`` is the config key named in errors."""
    if name not in ACTIVATIONS:
        raise UserError(
            f"unknown activation {name!r} for {knob}; choose one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


def norm2d(name: str, channels: int, knob: str) -> nn.Module:
    """A 2-d normalization layer by name (``none`` and ``spectral`` give an identity)."""
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "layer":
        # GroupNorm with one group normalizes over (C, H, W) per sample: layer norm for conv maps.
        return nn.GroupNorm(1, channels)
    if name in ("none", "spectral"):
        return nn.Identity()
    raise UserError(f"unknown normalization {name!r} for {knob}; choose one of {list(NORMS)}")


def raw_weight(layer: nn.Module) -> nn.Parameter:
    """The trained weight tensor of a layer: ``weight``, or the unnormalized
    ``parametrizations.weight.original`` of a spectrally normalized one (its ``weight`` is
    computed on each access, so initializing that would change nothing)."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Wrap every conv, transposed conv and linear layer of ``module`` with spectral
    normalization (Miyato et al., 2018), in place, and return ``module``.

    It uses the parametrization API (``torch.nn.utils.parametrizations.spectral_norm``): the
    trained tensor is ``<layer>.parametrizations.weight.original`` and the power iteration's
    vectors ``_u``/``_v`` are buffers, so deepcopy (EMA), state_dict (checkpoints), DDP's buffer
    broadcast, channels_last and torch.compile all see ordinary parameters and buffers. One
    power iteration per training forward (the paper's setting); none in eval mode. Apply it
    after the weight init: registering it runs 15 power iterations on the initial weights.
    Transposed convolutions are normalized along their output dimension (torch's default).
    """
    for layer in list(module.modules()):
        if isinstance(layer, WEIGHTED_LAYERS) and not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer)
    return module


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al.'s init: conv/linear weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, WEIGHTED_LAYERS):
            nn.init.normal_(raw_weight(m), 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def init_keras_weights(module: nn.Module) -> None:
    """Keras' defaults, which the reports' networks were trained with: conv/dense weights
    glorot-uniform, biases 0, batch-norm scale 1. Their networks have no normalisation in the
    keras_mnist discriminator, so Radford's N(0, 0.02) would shrink its signal ~10x per layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def require_positive(value: int, knob: str) -> None:
    """Reject non-positive sizes with a message naming the config key."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{knob} must be a positive integer, got {value!r}")
