"""Command line: parse, call, print. No logic lives here.

Errors are reported in one place, ``Commands.invoke``, around every command: a
``MovierecError`` (bad input, a damaged run, a refused resume, a request the command cannot
carry out) or an ``OSError`` (a file that cannot be read or written; its message names the
file) becomes ``error: <message>`` on one line of stderr and exit status 2. Any other
exception is a bug and keeps its traceback; ``MOVIEREC_TRACEBACK=1`` shows one for the
reported errors too. Click's own usage errors (an unknown option...) also exit with 2.

Each command imports what it calls when it runs, so ``movierec --help`` loads no model
code; what it prints comes from ``movierec.display``.
"""

# the commands register in this order, which `--help` shows
from movierec.cli import data, training, recommending, serving, reporting  # noqa: F401, I001
from movierec.cli.group import TRACEBACK_ENV, app, report_error

__all__ = ["TRACEBACK_ENV", "app", "report_error"]
