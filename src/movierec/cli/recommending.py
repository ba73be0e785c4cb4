"""Commands for recommendations: recommend, similar, batch."""

from __future__ import annotations

from pathlib import Path

import typer

from movierec.cli.group import AsJson, Device, Progress, RunDir, TopK, app
from movierec.errors import ParameterError


def _recommender(run: str, device: str = "cpu"):
    from movierec.recommend import Recommender

    return Recommender.load(run, device=device)


def _resolve_liked(r, liked: list[str]) -> list[int]:
    """Titles (year optional) or ids -> item indices; ``ParameterError`` listing every one
    that names no single movie, with its closest matches."""
    found, problems = [], []
    for query in liked:
        match = r.find_movie(query)
        if match.item_idx is not None:
            found.append(match.item_idx)
            continue
        close = "; ".join(r.catalog.display_title(i) for i in match.candidates[:5]) or "none"
        problems.append(f"{query!r}: {match.reason} (closest: {close})")
    if problems:
        raise ParameterError("cannot tell which movie is meant: " + ", ".join(problems))
    return found


Genre = typer.Option([], "--genre", help="Only movies of this genre (repeat: any of them).")
ExcludeGenre = typer.Option([], "--exclude-genre", help="No movies of this genre. Repeat it.")
Years = typer.Option(None, "--years", help="Released in these years: 2000-2019, 2000-, -1999.")
Exclude = typer.Option([], "--exclude", help="Never this movie (title or id). Repeat it.")


def _filters(r, genre: list[str], exclude_genre: list[str], years: str | None, exclude):
    """``Filters`` from the command's options, checked against the run's catalogue."""
    from movierec.filters import Filters, check_genres, parse_years

    return Filters(
        genres=check_genres(genre, r.catalog),
        exclude_genres=check_genres(exclude_genre, r.catalog),
        years=None if years is None else parse_years(years),
        exclude=tuple(int(m) for m in r.items.raw[_resolve_liked(r, exclude)]),
    )


@app.command()
def recommend(
    run: RunDir,
    user: int | None = typer.Option(None, "--user", help="A MovieLens user id of the run."),
    liked: list[str] = typer.Option(
        [], "--liked", help="A movie you like: title (year optional) or id. Repeat it."
    ),
    k: TopK = 10,
    history: int = typer.Option(10, min=0, help="How much of the user's history to show."),
    genre: list[str] = Genre,
    exclude_genre: list[str] = ExcludeGenre,
    years: str | None = Years,
    exclude: list[str] = Exclude,
    as_json: AsJson = False,
) -> None:
    """Top-K unseen movies for a known user (beside their recent history), or for a new
    person who names movies they like (folded into the trained model), each with the
    user's movies behind it."""
    import json

    import numpy as np
    from rich.console import Console

    from movierec.display import MovieRows, movie_table

    if (user is None) == (not liked):
        raise ParameterError("give either --user ID or at least one --liked MOVIE")
    r = _recommender(run)
    filters = _filters(r, genre, exclude_genre, years, exclude)
    rows = MovieRows(r.catalog)
    out: dict = {}
    if user is not None:
        idx = int(r.users.index(user)[0])
        if idx < 0:
            raise ParameterError(f"--user {user} is not in this run ({len(r.users):,} users)")
        rec = r.for_users(np.array([idx]), k, filters=filters, because=True)
        items, stamps = r.history(idx)
        out["user_id"] = user
        out["history"] = rows.watched(items[:history], stamps[:history])
    else:
        chosen = _resolve_liked(r, liked)
        rec = r.for_liked(np.array(chosen), k, filters=filters, because=True)
        out["liked"] = rows.movies(chosen)
    assert rec.because is not None  # asked for
    out["recommendations"] = rows.scored(rec.items[0], rec.scores[0], rec.because[0])
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    console = Console()
    if "history" in out:
        console.print(movie_table(f"user {user}: recently watched", out["history"], "date"))
        why = "because you watched"
    else:
        console.print(movie_table("you like", out["liked"], "year"))
        why = "because you like"
    console.print(movie_table(f"top {k} for you", out["recommendations"], "score", why))


@app.command()
def similar(
    run: RunDir,
    movie: str = typer.Option(..., "--movie", help="Title (year optional) or movie id."),
    k: TopK = 10,
    genre: list[str] = Genre,
    exclude_genre: list[str] = ExcludeGenre,
    years: str | None = Years,
    exclude: list[str] = Exclude,
    as_json: AsJson = False,
) -> None:
    """More like this: the movies nearest to one movie in the model's item space."""
    import json

    from rich.console import Console

    from movierec.display import MovieRows, movie_table

    r = _recommender(run)
    filters = _filters(r, genre, exclude_genre, years, exclude)
    rows = MovieRows(r.catalog)
    (idx,) = _resolve_liked(r, [movie])
    rec = r.similar(idx, k, filters=filters)
    out = {"movie": rows.movie(idx), "similar": rows.scored(rec.items[0], rec.scores[0])}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    Console().print(movie_table(f"like {r.catalog.display_title(idx)}", out["similar"], "score"))


@app.command()
def batch(
    run: RunDir,
    out: Path = typer.Option(..., "--out", help="SQLite store to write (replaced atomically)."),
    k: int = typer.Option(10, "--k", min=1, max=100, help="Movies per user people ask for."),
    depth: int | None = typer.Option(
        None,
        "--depth",
        help="Movies stored per user, so that filtered requests still find k "
        "(default: the larger of --k and 100; at most 1000).",
    ),
    parquet: Path | None = typer.Option(None, "--parquet", help="Also write this Parquet file."),
    chunk: int = typer.Option(2048, min=1, help="Users scored per step."),
    device: Device = "auto",
    devices: int = typer.Option(
        1, "--devices", help="Processes scoring users in parallel (GPUs 0..N-1 on cuda)."
    ),
    progress: Progress = True,
) -> None:
    """Every user's top movies (the --depth best, each with the user's movies behind it)
    into a store that `serve` reads."""
    from movierec.batch import depth_for, write_batch
    from movierec.train import resolve_device

    if devices < 1:
        raise ParameterError(f"--devices must be at least 1, got {devices}")
    rows = depth_for(k, depth)
    where = resolve_device(device)
    r = _recommender(run, device=str(where if where.type == "cpu" else "cuda:0"))
    meta = {"run": str(Path(run).resolve()), "model": r.run.config.model, "asked_k": k}
    summary = write_batch(
        r, out, rows, meta, chunk=chunk, parquet=parquet, devices=devices, progress=progress
    )
    typer.echo(
        f"{summary.users:,} users x top {summary.k} ({summary.rows:,} rows) in "
        f"{summary.seconds:.1f} s -> {summary.path}" + (f" and {parquet}" if parquet else "")
    )
