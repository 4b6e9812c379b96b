"""What every entry point shares: one-line errors for user mistakes, checked overrides."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from gan_lab.config import CONF_DIR
from gan_lab.errors import UserError, find_user_error

T = TypeVar("T")
# Old option names still accepted (their YAML pulls the new one), with a one-line notice.
DEPRECATED_CHOICES = {
    ("model", "seed003"): "keras_mnist",
    ("model", "seed000_bedroom"): "keras_bedroom64",
}
# Root keys that moved into the module group (conf/module/gan.yaml). Old commands, sweeps and
# the saved overrides of earlier runs (resume=<run dir>) still use them.
MOVED_KEYS = {
    key: f"module.{key}"
    for key in ("n_disc", "ema_decay", "on_nonfinite", "channels_last", "compile")
}


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, whose mistakes are one ``error:`` line (argparse prints its usage too)."""

    def error(self, message: str) -> NoReturn:
        exit_with_error(f"{message}; see `{self.prog} --help`")
        raise AssertionError  # unreachable: exit_with_error exits


def exit_with_error(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def rename_moved_keys(args: Sequence[str]) -> list[str]:
    """``n_disc=5`` becomes ``module.n_disc=5`` (``MOVED_KEYS``), with one notice per key."""
    renamed = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in MOVED_KEYS:
            print(f"{key} is now {MOVED_KEYS[key]}; running with {MOVED_KEYS[key]}={value}",
                  file=sys.stderr, flush=True)  # fmt: skip
            arg = f"{MOVED_KEYS[key]}={value}"
        renamed.append(arg)
    return renamed


def check_group_choices(args: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Reject ``group=option`` overrides naming an option with no YAML file, in one line.

    Hydra would say so too, over a dozen lines; this runs before Hydra with Hydra's parser.
    A deprecated option (``DEPRECATED_CHOICES``) is accepted with one notice line on stderr.
    """
    groups = {p.name for p in conf_dir.iterdir() if p.is_dir()} - {"hydra"}
    try:
        overrides = get_args_parser().parse_known_args(list(args))[0].overrides
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise UserError(f"cannot parse overrides: {str(err).splitlines()[0]}") from err
    for override in parsed:
        group = override.key_or_group.lstrip("+~")
        if group not in groups or override.is_delete():
            continue
        values = (
            list(override.sweep_string_iterator()) if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )  # fmt: skip
        options = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
        for value in values:
            if (group, value) in DEPRECATED_CHOICES and value in options:
                new = f"{group}={DEPRECATED_CHOICES[group, value]}"
                print(f"{group}={value} is deprecated; use {new}", file=sys.stderr, flush=True)
                continue
            if value not in options and value != "null":
                options = [o for o in options if (group, o) not in DEPRECATED_CHOICES]
                raise UserError(
                    f"unknown {group} {value!r}; choose one of: {', '.join(options)} "
                    f"(or add conf/{group}/{value}.yaml)"
                )


def check_composes(
    args: Sequence[str], conf_dir: Path = CONF_DIR, config_name: str = "config"
) -> None:
    """Compose the config with these overrides (a sweep's first values) before Hydra runs.

    Hydra reports a bad override (an unknown key, a null group, a type error) over several
    lines, or with a traceback, and exits 0 for some of them; this turns it into one line.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf.errors import OmegaConfBaseException

    parsed_args = get_args_parser().parse_known_args(list(args))[0]
    if parsed_args.help or parsed_args.hydra_help or parsed_args.info:
        return
    try:
        parsed = OverridesParser.create().parse_overrides(parsed_args.overrides)
    except HydraException as err:
        raise UserError(f"cannot parse overrides: {str(err).splitlines()[0]}") from err
    first = []
    for override in parsed:
        key = override.key_or_group.lstrip("+~")
        if key.startswith("hydra") and not key.startswith(("hydra.run.", "hydra.sweep.")):
            continue  # launcher/sweeper choices are Hydra's own business (output dirs are ours)
        text = override.input_line
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            text = f"{override.get_key_element()}={value}"
        first.append(text)
    try:
        with initialize_config_dir(str(conf_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=first, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = "; ".join(lines[:3]) or type(err).__name__
        if "Got NoneType" in detail:
            detail += " (turn a group off with its 'none' option, e.g. metrics=none)"
        raise UserError(f"bad override: {detail}") from err
    missing = [k for k in unset_keys(cfg) if not k.startswith("hydra.")]
    if missing:
        raise UserError(
            f"{', '.join(missing)} must be given (the config says ???), e.g. {missing[0]}=<value>"
        )
    key = "hydra.sweep.dir" if parsed_args.multirun else "hydra.run.dir"
    try:
        output_dir = OmegaConf.select(cfg, key, throw_on_missing=True)
    except OmegaConfBaseException:
        return  # resolved only at run time (a custom interpolation): Hydra will tell
    if output_dir:
        check_writable_dir(Path(str(output_dir)), key)


def unset_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Keys whose value is ``???`` (OmegaConf.missing_keys would resolve every interpolation,
    some of which only resolve inside a running Hydra app)."""
    keys = []
    for key in node:
        child = node._get_node(key)
        if OmegaConf.is_missing(node, key):
            keys.append(f"{prefix}{key}")
        elif isinstance(child, DictConfig) and not child._is_interpolation():
            keys += unset_keys(child, f"{prefix}{key}.")
    return keys


def check_writable_dir(path: Path, key: str) -> None:
    """UserError unless ``path`` exists as a writable folder or can be made as one."""
    existing = path.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{key}={path}: {existing} is a file, not a folder; choose another {key}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{key}={path}: {existing} is not writable; choose another {key}")


def run_user_errors_as_one_line(fn: Callable[[], T]) -> T:
    """Run ``fn``; a UserError anywhere in its cause chain becomes ``error: ...`` and exit 2."""
    try:
        return fn()
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        exit_with_error(str(user_error))
        raise  # unreachable; keeps type checkers content
