"""Image bytes and files -> uint8 tensors, with torchvision's decoders (PIL for the rest)."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image, ImageOps
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms.v2 import functional as F


@contextlib.contextmanager
def quiet_image_io() -> Iterator[None]:
    """Silence torchvision 0.29's per-call notice that torchvision.io moves to TorchCodec.

    The decoders still work and are what this package relies on; the notice would repeat
    once per decode call (thousands of times in a test run). Only that message is hidden.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The image decoding and encoding capabilities of TorchVision"
        )
        yield


def decode_jpegs(encoded: list[torch.Tensor], names: list[str], batch: int = 2048) -> torch.Tensor:
    """Same-size JPEGs (1-D uint8 tensors) -> uint8 RGB [N, 3, H, W], decoded in batches.

    Raises ValueError naming the first member of a batch that fails, or mixed sizes.
    """
    if not encoded:
        return torch.empty((0, 3, 0, 0), dtype=torch.uint8)
    chunks: list[torch.Tensor] = []
    for start in range(0, len(encoded), batch):
        try:
            with quiet_image_io():
                images = decode_jpeg(encoded[start : start + batch], mode=ImageReadMode.RGB)
        except RuntimeError as err:
            raise ValueError(f"a JPEG in {names[start]}.. does not decode ({err})") from err
        shapes = {tuple(x.shape) for x in images}
        if len(shapes) != 1 or (chunks and tuple(chunks[0].shape[1:]) not in shapes):
            raise ValueError(f"images of different sizes near {names[start]}: {sorted(shapes)}")
        chunks.append(torch.stack(images))
    return torch.cat(chunks)


def read_image(path: Path, channels: int) -> torch.Tensor:
    """One image file -> uint8 [channels, H, W]: torchvision's decoder, PIL for BMP etc.

    Safe to call from threads; wrap the whole threaded loop (not each call) in
    quiet_image_io(), since warning filters are process-global and not thread-safe.
    """
    try:
        mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
        image = decode_image(str(path), mode=mode, apply_exif_orientation=True)
    except RuntimeError:
        with Image.open(path) as pil:
            pil = ImageOps.exif_transpose(pil).convert("RGB" if channels == 3 else "L")
            image = F.pil_to_tensor(pil)
    if image.dtype != torch.uint8:  # 16-bit PNGs
        image = F.to_dtype(image, torch.uint8, scale=True)
    return image


def decode_bytes(blob: bytes, channels: int) -> torch.Tensor:
    """Encoded image bytes (JPEG, PNG, WebP, ...) -> uint8 [channels, H, W]; PIL as fallback."""
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    try:
        return decode_image(torch.frombuffer(bytearray(blob), dtype=torch.uint8), mode=mode)
    except RuntimeError:
        with Image.open(io.BytesIO(blob)) as pil:
            return F.pil_to_tensor(pil.convert("RGB" if channels == 3 else "L"))
