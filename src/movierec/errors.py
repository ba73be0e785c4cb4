"""The project's one error base class.

Every failure that a user can cause or fix (bad input, a damaged run, a refused request)
is a ``MovierecError`` whose ``str`` is one line naming the file, line or parameter and the
problem. The CLI maps it to ``error: <message>`` and exit code 2 in one place; anything
else escaping a command is a bug.
"""

from __future__ import annotations


class MovierecError(Exception):
    """A failure the user can act on; ``str(e)`` is the one-line message."""


class ParameterError(MovierecError, ValueError):
    """A parameter out of its range or naming nothing (an unknown model, device or user)."""
