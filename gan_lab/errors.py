"""The one exception type for user mistakes.

Entry points catch :class:`UserError` and print its message as a single line
(``error: ...``) with a non-zero exit code and no traceback. Raise it for bad
configs, missing or corrupt data and weights, and bad arguments; let genuine
bugs raise anything else so they keep their traceback.
"""


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""
