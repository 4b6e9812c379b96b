"""Bring uint8 images to the configured size and channel count, and scale batches to [-1, 1]."""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as F


def fit_images(
    images: torch.Tensor, image_size: int, channels: int, chunk: int = 4096
) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, channels, image_size, image_size].

    Resizes the shorter side to ``image_size`` (antialiased) and center-crops the longer one,
    so the aspect ratio is kept; converts RGB <-> grayscale. A no-op (no copy) when the images
    already match. Works in chunks so upscaling a whole dataset never holds it all as float.
    """
    n, c, h, w = images.shape
    if c == channels and h == w == image_size:
        return images
    out = torch.empty((n, channels, image_size, image_size), dtype=torch.uint8)
    for start in range(0, n, chunk):
        out[start : start + chunk] = fit_image(images[start : start + chunk], image_size, channels)
    return out


def fit_image(image: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """One uint8 image [C, H, W] (or a same-size batch [N, C, H, W]) fitted like fit_images."""
    if image.shape[-3] == 3 and channels == 1:
        # Drop to one channel before resizing: a third of the pixels to interpolate.
        image = F.rgb_to_grayscale(image, num_output_channels=1)
    if image.shape[-2:] != (image_size, image_size):
        image = F.resize(image, [image_size], antialias=True)  # shorter side -> image_size
        image = F.center_crop(image, [image_size, image_size])
    if image.shape[-3] == 1 and channels == 3:
        image = F.grayscale_to_rgb(image)
    return image


def to_float_images(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (255 / 127.5 is exact, so the ends are exact too)."""
    return batch.to(torch.float32).div_(127.5).sub_(1.0)
