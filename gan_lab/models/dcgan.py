"""DCGAN generator and discriminator (Radford et al., 2016), with the knobs studies sweep.

Generator: a linear projection of the latent vector to a ``width x s0 x s0`` map, then
``num_layers`` transposed convolutions; every layer but the last is followed by the norm and the
activation, the last one outputs ``channels`` maps through tanh. Widths halve at each layer from
``base_width * 2**(num_layers - 1)``, so ``num_layers=4, base_width=64`` at 64 px is exactly
Radford's 512-256-128-64 generator (its 1x1 -> 4x4 transposed conv is a linear layer).

Discriminator: ``num_layers`` convolutions with widths doubling from ``base_width`` (no norm on
the first, as in Radford), each optionally followed by 2x2 max pooling, then flatten and a linear
layer to one logit. The flatten + linear head accepts any final map size, so only a map that
shrinks below 1x1 is an error.

``norm: spectral`` uses no normalization layer; instead every conv, transposed conv and linear
layer of that network (the generator's projection and the discriminator's head included) is
spectrally normalized (Miyato et al., 2018; :func:`gan_lab.models.layers.apply_spectral_norm`),
after the N(0, 0.02) init. With no norm layer to supply a shift, its layers keep their biases
(``none`` keeps its bias-free layout, so that its existing checkpoints still load).

With ``padding: null`` the padding is chosen for exact ``stride``-fold resizing (any kernel
size), which keeps kernel-size sweeps from changing output sizes. The generator's start size
``s0`` is derived from the image size unless given; a combination that cannot produce the
dataset's image size fails at construction with both sizes and the knobs to change.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gan_lab.errors import UserError
from gan_lab.models.layers import (
    activation,
    apply_spectral_norm,
    init_dcgan_weights,
    norm2d,
    require_positive,
)


def _convt_out(size: int, kernel: int, stride: int, padding: int, output_padding: int) -> int:
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _auto_convt_padding(kernel: int, stride: int) -> tuple[int, int]:
    """Padding and output padding that make a transposed conv upsample by exactly ``stride``."""
    padding = max(0, math.ceil((kernel - stride) / 2))
    return padding, 2 * padding - (kernel - stride)


class DCGANGenerator(nn.Module):
    """Maps latent vectors ``[B, latent_dim]`` to images ``[B, channels, size, size]``, [-1, 1]."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        latent_dim: int,
        base_width: int,
        num_layers: int,
        kernel_size: int,
        stride: int,
        padding: int | None,
        init_size: int | None,
        norm: str,
        activation_name: str,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_size = image_size
        if padding is None:
            padding, output_padding = _auto_convt_padding(kernel_size, stride)
        else:
            output_padding = 0
        if output_padding >= stride:
            raise UserError(
                f"model.generator: kernel_size={kernel_size} with stride={stride} needs "
                f"output_padding {output_padding} >= stride; use kernel_size >= stride"
            )

        def out_size(s0: int) -> int:
            for _ in range(num_layers):
                s0 = _convt_out(s0, kernel_size, stride, padding, output_padding)
            return s0

        if init_size is None:
            candidates = [s for s in range(1, image_size + 1) if out_size(s) == image_size]
            if not candidates:
                produced = sorted({out_size(s) for s in range(1, image_size + 1)})
                near = min(produced, key=lambda p: abs(p - image_size))
                raise UserError(
                    f"model.generator cannot produce {image_size}x{image_size} images (the data's "
                    f"size) with kernel_size={kernel_size}, stride={stride}, padding={padding}, "
                    f"num_layers={num_layers} (nearest: {near}x{near}); change "
                    f"model.generator.kernel_size/stride/padding/num_layers or data.image_size"
                )
            init_size = candidates[0]
        elif out_size(init_size) != image_size:
            got = out_size(init_size)
            raise UserError(
                f"model.generator produces {got}x{got} images but the data is "
                f"{image_size}x{image_size}; change model.generator.init_size (or null for auto), "
                f"kernel_size/stride/padding/num_layers, or data.image_size"
            )
        self.init_size = init_size
        width = base_width * 2 ** (num_layers - 1)
        bias = norm == "spectral"  # no norm layer follows to supply a shift
        self.project = nn.Sequential(
            nn.Linear(latent_dim, width * init_size * init_size, bias=bias),
            nn.Unflatten(1, (width, init_size, init_size)),
            norm2d(norm, width, "model.generator.norm"),
            activation(activation_name, "model.generator.activation"),
        )
        layers: list[nn.Module] = []
        for i in range(num_layers):
            last = i == num_layers - 1
            out_ch = channels if last else width // 2
            layers.append(
                nn.ConvTranspose2d(
                    width, out_ch, kernel_size, stride, padding, output_padding, bias=last or bias
                )
            )
            if last:
                layers.append(nn.Tanh())
            else:
                layers.append(norm2d(norm, out_ch, "model.generator.norm"))
                layers.append(activation(activation_name, "model.generator.activation"))
            width = out_ch
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z))


class DCGANDiscriminator(nn.Module):
    """Maps images ``[B, channels, size, size]`` to one real/fake logit per image, ``[B]``."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        base_width: int,
        num_layers: int,
        kernel_size: int,
        stride: int,
        padding: int | None,
        max_pool: bool,
        norm: str,
        activation_name: str,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = (kernel_size - 1) // 2
        layers: list[nn.Module] = []
        size, in_ch = image_size, channels
        for i in range(num_layers):
            out_ch = base_width * 2**i
            bias = i == 0 or norm == "spectral"  # no norm layer follows to supply a shift
            layers.append(nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=bias))
            size = _conv_out(size, kernel_size, stride, padding)
            if i > 0:
                layers.append(norm2d(norm, out_ch, "model.discriminator.norm"))
            layers.append(activation(activation_name, "model.discriminator.activation"))
            if max_pool:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            if size < 1:
                raise UserError(
                    f"model.discriminator shrinks {image_size}x{image_size} images below 1x1 at "
                    f"layer {i + 1} of {num_layers}; reduce model.discriminator.num_layers, "
                    f"stride or kernel_size, or turn off max_pool"
                )
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.final_size = size
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(in_ch * size * size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def build_generator(
    image_size: int,
    channels: int,
    latent_dim: int,
    base_width: int = 64,
    num_layers: int = 2,
    kernel_size: int = 4,
    stride: int = 2,
    padding: int | None = None,
    init_size: int | None = None,
    norm: str = "batch",
    activation: str = "relu",
) -> DCGANGenerator:
    """A DCGAN generator with N(0, 0.02) init (then spectral norm with ``norm="spectral"``);
    see the module docstring for the layout."""
    require_positive(latent_dim, "model.latent_dim")
    for knob, value in [
        ("data.image_size", image_size),
        ("data.channels", channels),
        ("model.generator.base_width", base_width),
        ("model.generator.num_layers", num_layers),
        ("model.generator.kernel_size", kernel_size),
        ("model.generator.stride", stride),
    ]:
        require_positive(value, knob)
    net = DCGANGenerator(
        image_size, channels, latent_dim, base_width, num_layers, kernel_size, stride,
        padding, init_size, norm, activation,
    )  # fmt: skip
    init_dcgan_weights(net)
    if norm == "spectral":
        apply_spectral_norm(net)
    return net


def build_discriminator(
    image_size: int,
    channels: int,
    base_width: int = 64,
    num_layers: int = 2,
    kernel_size: int = 4,
    stride: int = 2,
    padding: int | None = None,
    max_pool: bool = False,
    norm: str = "batch",
    activation: str = "leaky_relu",
) -> DCGANDiscriminator:
    """A DCGAN discriminator with N(0, 0.02) init (then spectral norm with ``norm="spectral"``);
    see the module docstring for the layout."""
    for knob, value in [
        ("data.image_size", image_size),
        ("data.channels", channels),
        ("model.discriminator.base_width", base_width),
        ("model.discriminator.num_layers", num_layers),
        ("model.discriminator.kernel_size", kernel_size),
        ("model.discriminator.stride", stride),
    ]:
        require_positive(value, knob)
    net = DCGANDiscriminator(
        image_size, channels, base_width, num_layers, kernel_size, stride, padding, max_pool,
        norm, activation,
    )  # fmt: skip
    init_dcgan_weights(net)
    if norm == "spectral":
        apply_spectral_norm(net)
    return net
