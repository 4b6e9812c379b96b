"""Small layer factories shared by the architecture families."""

from __future__ import annotations

from torch import nn

from gan_lab.errors import UserError

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": lambda: nn.GELU(),
    "silu": lambda: nn.SiLU(inplace=True),
}

NORMS = ("batch", "instance", "layer", "none")


def activation(name: str, knob: str) -> nn.Module:
    """A fresh activation module by name; ``knob`` is the config key named in errors."""
    if name not in ACTIVATIONS:
        raise UserError(
            f"unknown activation {name!r} for {knob}; choose one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


def norm2d(name: str, channels: int, knob: str) -> nn.Module:
    """A 2-d normalization layer by name (``none`` gives an identity)."""
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if name == "layer":
        # GroupNorm with one group normalizes over (C, H, W) per sample: layer norm for conv maps.
        return nn.GroupNorm(1, channels)
    if name == "none":
        return nn.Identity()
    raise UserError(f"unknown normalization {name!r} for {knob}; choose one of {list(NORMS)}")


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al.'s init: conv/linear weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
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
