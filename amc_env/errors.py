"""The one exception type for mistakes a user can make (bad names, files, budgets, missing data).

Command-line entry points turn a :class:`UserError` into a single line on stderr and exit status 2
(see ``scripts/cli.py``); library callers get a normal exception they can catch.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem caused by the caller's input, with a message that names the problem and the fix.

    Subclasses :class:`ValueError` so library users can catch it with the usual idiom.
    """
