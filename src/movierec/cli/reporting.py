"""Commands for looking at a run: report."""

from __future__ import annotations

from pathlib import Path

import typer

from movierec.cli.group import RunDir, app


@app.command()
def report(
    run: RunDir,
    out: Path | None = typer.Option(
        None, "--out", help="HTML file to write. Default: report.html in the run directory."
    ),
) -> None:
    """One self-contained HTML page about a run, with its plots inside.

    Training curves, the leaderboard (when `movierec run` saved one), popularity bias, a
    map of the movies' vectors, the data set's shape. Nothing in it is fetched."""
    from movierec.recommend import Recommender
    from movierec.report import write_report

    written = write_report(Recommender.load(run), out)
    typer.echo(f"report: {written.path} ({written.bytes / 1e6:.1f} MB, {written.seconds:.1f} s)")
