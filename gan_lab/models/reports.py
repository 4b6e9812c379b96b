"""The two reports' networks, rebuilt from their descriptions (Keras originals, "same" padding).

``keras_bedroom64`` (the first report, bedrooms): a 64x64x3 DCGAN. Generator: dense from the
latent vector to 16,384 units (256 x 8 x 8), three stride-2 transposed convolutions with 128,
64 and 32 filters, each with batch norm and LeakyReLU, then a 3-channel tanh convolution at
64x64. Discriminator: three stride-2 convolutions with 32, 128 and 256 filters and LeakyReLU,
flatten, a dense logit.

``keras_mnist`` (the second report, MNIST and CIFAR-10): for 28x28 and 32x32 data.
Generator: dense to a 128-channel map at a quarter of the image size, two stride-2 transposed
convolutions (kernel 2 by default) with LeakyReLU, then a refining 7x7 convolution to the image
channels (tanh). Discriminator: four convolutions (kernel 4, stride 2 by default) with
LeakyReLU, optional 2x2 max pooling after each, flatten, a dense logit. The knobs the report
swept are arguments: latent dim, discriminator kernel size, stride and max pooling, generator
kernel size.

Keras' "same" padding (output = ceil(input / stride)) is reproduced with :class:`SameConv2d`,
so every kernel/stride combination of the sweeps gives a valid network.

The builders were first named after the reports' run names (``build_seed003_*``,
``build_seed000_*``); those names stay as aliases, because checkpoints store the ``_target_``
they were trained with.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import UserError
from gan_lab.models.layers import init_keras_weights, require_positive


class SameConv2d(nn.Conv2d):
    """A Conv2d with Keras' "same" padding: ``ceil(in / stride)`` outputs for any kernel."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(cin, cout, kernel_size, stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.size(-1), x.size(-2)):  # F.pad wants (left, right, top, bottom)
            k, s = self.kernel_size[0], self.stride[0]
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def same_convt(cin: int, cout: int, kernel_size: int, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed conv that multiplies the size by ``stride`` exactly (Keras "same")."""
    if kernel_size < stride:
        raise UserError(
            f"model.generator.kernel_size={kernel_size} is smaller than its stride {stride}; "
            f"use kernel_size >= {stride}"
        )
    padding = math.ceil((kernel_size - stride) / 2)
    output_padding = 2 * padding - (kernel_size - stride)
    return nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding, bias=False)


def _leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class ConvStackDiscriminator(nn.Module):
    """ "Same"-padded stride convolutions, LeakyReLU, optional max pooling, a dense logit."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        widths: list[int],
        kernel_size: int,
        stride: int,
        max_pool: bool,
        norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, cin = image_size, channels
        for i, width in enumerate(widths):
            layers.append(SameConv2d(cin, width, kernel_size, stride))
            size = math.ceil(size / stride)
            if norm and i > 0:
                layers.append(nn.BatchNorm2d(width))
            layers.append(_leaky())
            if max_pool:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                size = math.ceil(size / 2)
            cin = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * size * size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


class DenseConvGenerator(nn.Module):
    """Dense to a map of ``init_size``, stride-2 transposed convs, a refining tanh conv."""

    def __init__(
        self,
        image_size: int,
        channels: int,
        latent_dim: int,
        init_width: int,
        widths: list[int],
        kernel_size: int,
        out_kernel_size: int,
        norm: bool,
    ) -> None:
        super().__init__()
        ups = len(widths)
        if image_size % 2**ups:
            raise UserError(
                f"model.generator cannot produce {image_size}x{image_size} images with {ups} "
                f"stride-2 upsamplings ({image_size} is not divisible by {2**ups}); change "
                f"data.image_size"
            )
        self.latent_dim = latent_dim
        s0 = image_size // 2**ups
        project: list[nn.Module] = [nn.Linear(latent_dim, init_width * s0 * s0)]
        project += [nn.Unflatten(1, (init_width, s0, s0))]
        project += [nn.BatchNorm2d(init_width)] if norm else []
        self.project = nn.Sequential(*project, _leaky())
        layers: list[nn.Module] = []
        cin = init_width
        for width in widths:
            layers.append(same_convt(cin, width, kernel_size))
            layers += [nn.BatchNorm2d(width)] if norm else []
            layers.append(_leaky())
            cin = width
        layers += [SameConv2d(cin, channels, out_kernel_size), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z))


def _check(values: dict[str, int]) -> None:
    for knob, value in values.items():
        require_positive(value, knob)


def build_keras_mnist_generator(
    image_size: int, channels: int, latent_dim: int = 100, kernel_size: int = 2,
    width: int = 128,
) -> DenseConvGenerator:  # fmt: skip
    """The second report's generator (28 or 32 px); ``kernel_size`` is its swept G knob."""
    _check({"model.latent_dim": latent_dim, "model.generator.kernel_size": kernel_size,
            "data.image_size": image_size})  # fmt: skip
    net = DenseConvGenerator(image_size, channels, latent_dim, width, [width, width], kernel_size,
                             out_kernel_size=7, norm=False)  # fmt: skip
    init_keras_weights(net)
    return net


def build_keras_mnist_discriminator(
    image_size: int, channels: int, kernel_size: int = 4, stride: int = 2,
    max_pool: bool = False, widths: tuple[int, ...] = (64, 64, 128, 128),
) -> ConvStackDiscriminator:  # fmt: skip
    """The second report's discriminator; kernel size, stride and max pooling are its knobs."""
    _check({"model.discriminator.kernel_size": kernel_size,
            "model.discriminator.stride": stride, "data.image_size": image_size})  # fmt: skip
    net = ConvStackDiscriminator(image_size, channels, list(widths), kernel_size, stride, max_pool)
    init_keras_weights(net)
    return net


def build_keras_bedroom64_generator(
    image_size: int, channels: int, latent_dim: int = 100, kernel_size: int = 4,
) -> DenseConvGenerator:  # fmt: skip
    """The first report's 64x64 generator: dense 16,384 -> 128-64-32 transposed convs -> tanh."""
    _check({"model.latent_dim": latent_dim, "model.generator.kernel_size": kernel_size})
    if image_size != 64:
        raise UserError(
            f"model keras_bedroom64 makes 64x64 images but the data is {image_size}x{image_size}; "
            f"set data.image_size=64"
        )
    net = DenseConvGenerator(image_size, channels, latent_dim, 256, [128, 64, 32], kernel_size,
                             out_kernel_size=3, norm=True)  # fmt: skip
    init_keras_weights(net)
    return net


def build_keras_bedroom64_discriminator(
    image_size: int,
    channels: int,
    kernel_size: int = 4,
) -> ConvStackDiscriminator:
    """The first report's discriminator: 32-128-256 stride-2 convolutions, a dense logit."""
    _check({"model.discriminator.kernel_size": kernel_size, "data.image_size": image_size})
    net = ConvStackDiscriminator(image_size, channels, [32, 128, 256], kernel_size, 2, False)
    init_keras_weights(net)
    return net


# The old names, which checkpoints written before the rename name as their ``_target_``.
build_seed003_generator = build_keras_mnist_generator
build_seed003_discriminator = build_keras_mnist_discriminator
build_seed000_generator = build_keras_bedroom64_generator
build_seed000_discriminator = build_keras_bedroom64_discriminator
