"""The one exception type for user mistakes.

Entry points catch :class:`UserError` and print its message as a single line
(``error: ...``) with a non-zero exit code and no traceback. Raise it for bad
configs, missing or corrupt data and weights, and bad arguments; let genuine
bugs raise anything else so they keep their traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


def find_user_error(err: BaseException) -> UserError | None:
    """The UserError behind ``err``, if any (Hydra's instantiate wraps what targets raise)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """An exception's message squeezed onto one short line, for error lists and logs."""
    text = err if isinstance(err, str) else (str(err) or type(err).__name__)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
