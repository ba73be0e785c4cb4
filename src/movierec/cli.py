"""Command line: parse, call, print. No logic lives here."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

# --- commands: data (prepare, fetch, synth) ---

# --- commands: training and evaluation (train, evaluate, compare, run) ---

# --- commands: recommendations (recommend, similar, batch) ---

# --- commands: service (serve) ---


if __name__ == "__main__":
    app()
