"""Sample a checkpoint: ``python -m gan_lab.sample ckpt_path=... n=64 out=grid.png``.

Writes an image grid and a latent interpolation grid, on CPU or CUDA. Arguments are Hydra
overrides of ``conf/sample.yaml`` (composed, not a Hydra app: sampling makes no run folder).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from PIL import Image
from torchvision.utils import save_image

from gan_lab.commands.cli import run_user_errors_as_one_line
from gan_lab.config import CONF_DIR
from gan_lab.errors import UserError
from gan_lab.gan.checkpoints import load_generator
from gan_lab.gan.evaluate import pick_device
from gan_lab.io import atomic_write


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` at fractions ``t`` ([T]).

    Returns [rows, T, dim]. Gaussian latents live near a sphere; a straight line between two
    of them passes through low-norm latents the generator never saw (White, 2016).
    """
    a_unit, b_unit = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_unit * b_unit).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]
    t = t[None, :, None]
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a[:, None] + (torch.sin(t * omega) / so) * b[:, None]


def _positive(cfg: DictConfig, key: str) -> int:
    value = cfg[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"{key} must be a positive integer, got {value!r}")
    return value


def _image_format(path: Path, key: str) -> str:
    """PIL's format name for ``path``'s suffix (needed to save into a file object)."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt not in ("PNG", "JPEG"):
        raise UserError(f"{key}={path}: give an image file name ending in .png or .jpg")
    return fmt


def _interpolation_path(cfg: DictConfig, out: Path) -> Path | None:
    if cfg.interpolation_out in ("none", "None"):
        return None
    if cfg.interpolation_out:
        return Path(cfg.interpolation_out)
    return out.with_name(f"{out.stem}_interpolation{out.suffix or '.png'}")


@torch.no_grad()
def sample(cfg: DictConfig) -> dict[str, str]:
    """Write the grid (and the interpolation grid); returns their paths."""
    n = _positive(cfg, "n")
    rows, steps = _positive(cfg, "interpolation_rows"), _positive(cfg, "interpolation_steps")
    out = Path(str(cfg.out))
    formats = {"out": _image_format(out, "out")}
    interp = _interpolation_path(cfg, out)
    if interp is not None:
        formats["interpolation_out"] = _image_format(interp, "interpolation_out")
    device = pick_device(cfg.device)
    generator, config, _ = load_generator(cfg.ckpt_path, ema=cfg.ema)
    generator.to(device)
    latent_dim = config["model"]["latent_dim"]
    g = torch.Generator().manual_seed(cfg.seed)

    def render(z: torch.Tensor, path: Path, nrow: int, fmt: str) -> None:
        images = torch.cat([generator(c.to(device)).float().cpu() for c in z.split(256)])
        grid = {"nrow": nrow, "normalize": True, "value_range": (-1, 1), "padding": 2}
        atomic_write(path, lambda f: save_image(images, f, format=fmt, **grid))

    written = {}
    nrow = cfg.nrow or math.ceil(math.sqrt(n))
    render(torch.randn(n, latent_dim, generator=g), out, nrow, formats["out"])
    written["grid"] = str(out)
    if interp is not None:
        ends = torch.randn(2, rows, latent_dim, generator=g)
        z = slerp(ends[0], ends[1], torch.linspace(0, 1, steps)).reshape(-1, latent_dim)
        render(z, interp, steps, formats["interpolation_out"])
        written["interpolation"] = str(interp)
    return written


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``gan-lab-sample``)."""
    args = sys.argv[1:] if argv is None else argv

    def run() -> dict[str, str]:
        try:
            with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
                cfg = compose("sample", overrides=args)
            _ = cfg.ckpt_path
        except Exception as err:
            first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
            raise UserError(f"bad arguments ({first}); e.g. ckpt_path=<run dir> n=64 "
                            "out=grid.png") from err  # fmt: skip
        return sample(cfg)

    for kind, path in run_user_errors_as_one_line(run).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
