"""The one exception type for mistakes a user can make (bad names, files, budgets, missing data).

Command-line entry points turn a :class:`UserError` into a single line on stderr and exit status 2
(see ``scripts/cli.py``); library callers get a normal exception they can catch.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem caused by the caller's input, with a message that names the problem and the fix.

    Subclasses :class:`ValueError` so library users can catch it with the usual idiom.
    """


def first_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message``, at most ``limit`` characters: how a failure from
    code we do not control (a model's forward, a library) is quoted in a one-line report."""
    line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {line}"[:limit]
