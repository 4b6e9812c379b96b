"""The 32x32 ResNet generator and discriminator of SNGAN (Miyato et al., 2018, "Spectral
Normalization for Generative Adversarial Networks", appendix B, the CIFAR-10 ResNet; the same
networks as the authors' Chainer code, sngan_projection, and Mimicry's SNGAN 32).

Generator (``width`` 256): a linear layer from the latent vector (128) to a ``width x s0 x s0``
map (``s0 = image_size / 8``: 4 at 32 px), three up-blocks (BN-ReLU-2x nearest upsample-conv3x3-
BN-ReLU-conv3x3, shortcut 2x upsample then conv1x1), then BN, ReLU, a conv3x3 to the image
channels and tanh.

Discriminator (``width`` 128): an optimized first block (conv3x3-ReLU-conv3x3-avgpool, shortcut
avgpool then conv1x1), a downsampling block and two plain blocks (ReLU-conv3x3-ReLU-conv3x3
[-avgpool]; a 1x1 conv shortcut, then avgpool, where the block changes channels or
downsamples), then ReLU, a global SUM pooling and a linear layer to one logit. With
``spectral_norm`` (the default) every conv and linear layer is spectrally normalized; the same
network without it is ``spectral_norm: false``.

Two details follow the Chainer original where Mimicry differs: the generator upsamples with
nearest neighbours (Mimicry: bilinear), and a discriminator block's shortcut sees the block's
input before its first ReLU (Mimicry's in-place ReLU also rectifies the shortcut's input).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import UserError
from gan_lab.models.layers import apply_spectral_norm, require_positive

# Init as Mimicry (and the Chainer original's GlorotUniform) does: the convolutions inside a
# residual branch get xavier-uniform with gain sqrt(2) (they follow a ReLU), shortcut convs and
# the first / last layers (G's input linear and output conv, D's logit) gain 1; batch norm
# scale 1, shift 0. Biases start at 0 (Chainer's default; Mimicry keeps PyTorch's uniform
# default). Spectral norm is applied after the init, so it reparametrizes these weights.
RESIDUAL_GAIN = math.sqrt(2.0)


def _init(layer: nn.Conv2d | nn.Linear, gain: float) -> None:
    nn.init.xavier_uniform_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def _conv(cin: int, cout: int, kernel_size: int, gain: float) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, kernel_size, 1, kernel_size // 2)
    _init(conv, gain)
    return conv


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GenBlock(nn.Module):
    """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus an upsample + conv1x1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv(cout, cout, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(cin, cout, 1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_upsample(F.relu(self.bn1(x))))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.shortcut(_upsample(x))


class OptimizedDisBlock(nn.Module):
    """The discriminator's first block: conv3x3-ReLU-conv3x3-avgpool, shortcut avgpool-conv1x1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(cout, cout, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(cin, cout, 1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))


class DisBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3[-avgpool]; a conv1x1[-avgpool] shortcut where the channels
    change or the block downsamples, else the identity."""

    def __init__(self, cin: int, cout: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = _conv(cin, cin, 3, RESIDUAL_GAIN)  # hidden width = input width (Chainer)
        self.conv2 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        learnable = cin != cout or downsample
        self.shortcut = _conv(cin, cout, 1, 1.0) if learnable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        skip = x if self.shortcut is None else self.shortcut(x)
        if self.downsample:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class ResNetGenerator(nn.Module):
    """Maps latent vectors ``[B, latent_dim]`` to images ``[B, channels, size, size]``, [-1, 1]."""

    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.init_size = image_size // 8
        self.width = width
        self.project = nn.Linear(latent_dim, width * self.init_size**2)
        _init(self.project, 1.0)
        self.blocks = nn.Sequential(*(GenBlock(width, width) for _ in range(3)))
        self.out_bn = nn.BatchNorm2d(width)
        self.out_conv = _conv(width, channels, 3, 1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).unflatten(1, (self.width, self.init_size, self.init_size))
        h = F.relu(self.out_bn(self.blocks(h)))
        return torch.tanh(self.out_conv(h))


class ResNetDiscriminator(nn.Module):
    """Maps images ``[B, channels, size, size]`` to one real/fake logit per image, ``[B]``."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            OptimizedDisBlock(channels, width),
            DisBlock(width, width, downsample=True),
            DisBlock(width, width, downsample=False),
            DisBlock(width, width, downsample=False),
        )
        self.head = nn.Linear(width, 1)
        _init(self.head, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        return self.head(h).squeeze(1)


def build_resnet_generator(
    image_size: int,
    channels: int,
    latent_dim: int = 128,
    width: int = 256,
) -> ResNetGenerator:
    """SNGAN's ResNet generator (no spectral norm, as in the paper); see the module docstring."""
    for knob, value in [
        ("model.latent_dim", latent_dim),
        ("data.image_size", image_size),
        ("data.channels", channels),
        ("model.generator.width", width),
    ]:
        require_positive(value, knob)
    if image_size % 8:
        raise UserError(
            f"model.generator (ResNet) cannot make {image_size}x{image_size} images: its 3 "
            f"up-blocks double a map of image_size/8, so data.image_size must be a multiple of 8 "
            f"(32 as in the paper; 48 or 64 also work)"
        )
    return ResNetGenerator(image_size, channels, latent_dim, width)


def build_resnet_discriminator(
    image_size: int,
    channels: int,
    width: int = 128,
    spectral_norm: bool = True,
) -> ResNetDiscriminator:
    """SNGAN's ResNet discriminator, spectrally normalized unless ``spectral_norm=False``."""
    for knob, value in [
        ("data.image_size", image_size),
        ("data.channels", channels),
        ("model.discriminator.width", width),
    ]:
        require_positive(value, knob)
    if image_size % 4:
        raise UserError(
            f"model.discriminator (ResNet) cannot take {image_size}x{image_size} images: it "
            f"halves them twice, so data.image_size must be a multiple of 4 (32 as in the paper)"
        )
    net = ResNetDiscriminator(channels, width)
    if spectral_norm:
        apply_spectral_norm(net)
    return net
