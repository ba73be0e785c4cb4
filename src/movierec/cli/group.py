"""The command group, its one error report, and the options several commands share."""

from __future__ import annotations

import os
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from movierec.errors import MovierecError

TRACEBACK_ENV = "MOVIEREC_TRACEBACK"
REPORTED = (MovierecError, OSError)  # what Commands.invoke turns into one line and exit 2
DEFAULT_MODEL = "history"  # `run`'s model, chosen on validation: bench/RESULTS.md, "Quality"
# the candidates for the default; `compare` says which wins on validation (standing.py)
DEFAULT_CANDIDATES = ("history", "sasrec")


def report_error(error: BaseException) -> None:
    """``error: <message>`` on one line of stderr (red on a terminal); a message of several
    lines is joined with "; "."""
    lines = [part.strip() for part in str(error).splitlines() if part.strip()]
    typer.secho(f"error: {'; '.join(lines) or type(error).__name__}", err=True, fg="red")


class Commands(TyperGroup):
    """The command group: runs the chosen command and reports its ``REPORTED`` errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except REPORTED as e:
            if os.environ.get(TRACEBACK_ENV):
                raise
            report_error(e)
            raise typer.Exit(2) from None


# One line per model `train --model` and `run --model` accept (tests check it lists PRESETS).
MODEL_LINES = {
    "history": "the default: a user is a recency-weighted mix of their last movies",
    "tutorial": "the small NCF (an MLP tower) of the well-known tutorial",
    "gmf": "generalised matrix factorisation (He et al. 2017)",
    "mlp": "an MLP tower over user and movie embeddings (He et al. 2017)",
    "neumf": "GMF and MLP side by side, one prediction layer (He et al. 2017)",
    "sasrec": "a transformer over the last 200 movies (SASRec, causal attention)",
}

app = typer.Typer(
    cls=Commands,
    add_completion=False,
    no_args_is_help=True,
    help="Command line: parse, call, print. No logic lives here.",
    epilog="Models (--model):\n\n"
    + "\n\n".join(f"{name}: {line}" for name, line in MODEL_LINES.items()),
)

# Options several commands share.
Data = Annotated[
    str, typer.Option("--data", help="Directory, .zip, or release name (ml-25m, ...).")
]
MinYear = Annotated[int | None, typer.Option(help="Keep movies released in this year or later.")]
Device = Annotated[str, typer.Option(help="auto ($MOVIEREC_DEVICE, cuda, cpu), cpu, cuda.")]
Progress = Annotated[bool, typer.Option(help="Show the progress bar.")]
RunDir = Annotated[str, typer.Argument(help="Run directory written by `movierec train`.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
TopK = Annotated[int, typer.Option("--k", min=1, max=1000, help="How many movies.")]
SMALL = "ml-latest-small"


def comma_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of names: blanks and repeats dropped, order kept."""
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
