"""What every entry point shares: one-line errors for user mistakes, checked overrides."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from gan_lab.errors import UserError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
T = TypeVar("T")


def find_user_error(err: BaseException) -> UserError | None:
    """The UserError behind ``err``, if any (Hydra's instantiate wraps what targets raise)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def exit_with_error(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def check_group_choices(args: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Reject ``group=option`` overrides naming an option with no YAML file, in one line.

    Hydra would say so too, over a dozen lines; this runs before Hydra with Hydra's parser.
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
            if value not in options and value != "null":
                raise UserError(
                    f"unknown {group} {value!r}; choose one of: {', '.join(options)} "
                    f"(or add conf/{group}/{value}.yaml)"
                )


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
