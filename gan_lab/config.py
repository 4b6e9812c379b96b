"""Where gan_lab's Hydra configs live, and small helpers for using them outside a Hydra app."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gan_lab.errors import UserError

# conf/ sits beside the package (the project's top level). The commands pass this absolute
# path to hydra.main: a relative one is resolved against the *calling module* when a command
# runs as a console script (gan-lab-train), which would look for a Python package "conf".
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def hydra_quoted(text: str) -> str:
    """``text`` as a double-quoted Hydra override value (paths may hold '=' or ',')."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def datamodule_from_conf(
    name: str, overrides: Sequence[str] = (), conf_dir: Path = CONF_DIR
) -> Any:
    """The datamodule of ``conf/data/<name>.yaml`` (paths from the environment, as in training)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    options = sorted(p.stem for p in (conf_dir / "data").glob("*.yaml"))
    if name not in options:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(options)}")
    with initialize_config_dir(str(conf_dir), version_base="1.3"):
        cfg = compose("config", overrides=[f"data={name}", "metrics=none", *overrides])
    return instantiate(cfg.data)
