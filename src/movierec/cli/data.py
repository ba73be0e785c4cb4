"""Commands for data: prepare, fetch, synth."""

from __future__ import annotations

from pathlib import Path

import typer

from movierec.cli.group import SMALL, Data, MinYear, app


@app.command()
def prepare(
    data: Data = SMALL,
    min_year: MinYear = None,
    min_rating: float | None = typer.Option(None, help="Keep ratings at or above this."),
    min_interactions: int = typer.Option(3, min=1, help="Drop users with fewer interactions."),
    strict: bool = typer.Option(False, help="Fail on rows that would be dropped."),
) -> None:
    """Load and validate a MovieLens release, filter it to implicit feedback, and report."""
    from rich.console import Console

    from movierec import movielens
    from movierec import prepare as preparing
    from movierec.display import prepare_table

    ds, load_report = movielens.load(data, strict=strict)
    _, report = preparing.prepare(
        ds, min_year=min_year, min_rating=min_rating, min_user_interactions=min_interactions
    )
    console = Console()
    for line in load_report.lines():
        console.print(line, highlight=False, markup=False)
    console.print(prepare_table(ds.name, load_report, report))


@app.command()
def fetch(
    name: str = typer.Argument(..., help="ml-100k, ml-1m, ml-10m, ml-20m, ml-25m or ml-32m."),
    cache_dir: Path | None = typer.Option(None, help="Default: $MOVIEREC_DATA, ~/.cache/movierec"),
    checksum: str | None = typer.Option(None, help="md5:HEX or sha256:HEX; default: the .md5"),
    force: bool = typer.Option(False, help="Download again even when present."),
) -> None:
    """Download a MovieLens release from GroupLens, verify its checksum and unpack it."""
    from movierec import movielens

    path = movielens.fetch(name, cache_dir, checksum=checksum, force=force)
    typer.echo(f"{name} -> {path}")


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Directory to write ratings.csv and movies.csv into."),
    scale: float = typer.Option(1.0, help="1.0: ~22.6M ratings, 162,541 users, 62,423 movies."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write a synthetic ML-25M-shaped data set (for speed and memory benchmarks)."""
    from movierec import synth as synthetic

    summary = synthetic.synth(out, scale=scale, seed=seed)
    typer.echo(
        f"{summary.ratings:,} ratings, {summary.users:,} users, {summary.movies:,} movies "
        f"-> {summary.path}"
    )
