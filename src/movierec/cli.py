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

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from movierec.errors import MovierecError, ParameterError

TRACEBACK_ENV = "MOVIEREC_TRACEBACK"
REPORTED = (MovierecError, OSError)  # what Commands.invoke turns into one line and exit 2
DEFAULT_MODEL = "history"  # `run`'s model, chosen on validation: bench/RESULTS.md, "Quality"


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


app = typer.Typer(
    cls=Commands, add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0]
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


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names: blanks and repeats dropped, order kept."""
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


# --- commands: data (prepare, fetch, synth) ---


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


# --- commands: training and evaluation (train, evaluate, compare, run) ---


@app.command()
def train(
    data: Data = SMALL,
    out: Path = typer.Option(..., "--out", help="Run directory to write (and resume from)."),
    min_year: MinYear = None,
    model: str = typer.Option("tutorial", help="tutorial, gmf, mlp, neumf or history."),
    epochs: int | None = typer.Option(None, help="Maximum epochs. Default: the model's preset."),
    batch: int | None = typer.Option(None, help="Rows per step. Default: the model's preset."),
    factors: int | None = typer.Option(None, help="Embedding size. Default: the model's preset."),
    lr: float | None = typer.Option(None, help="Adam learning rate. Default: the preset."),
    negatives: int | None = typer.Option(None, help="Negatives per positive (preset: 4)."),
    patience: int | None = typer.Option(None, help="Stop after N epochs without a better val."),
    seed: int = typer.Option(0, help="Seed for initialisation, negatives and shuffling."),
    device: Device = "auto",
    devices: int = typer.Option(
        1, "--devices", help="Processes per node: GPUs, or CPU processes (gloo). >1: DDP."
    ),
    num_nodes: int = typer.Option(1, "--num-nodes", help="Machines (DDP; needs --strategy ddp)."),
    strategy: str = typer.Option("auto", help="auto (DDP when devices x nodes > 1) or ddp."),
    resume: bool = typer.Option(False, help="Continue the interrupted run in --out."),
    progress: Progress = True,
) -> None:
    """Train an NCF model; keep the epoch with the best validation HR@10; write a run.

    With --devices/--num-nodes, every process runs this same command (Lightning starts
    ranks 1..N-1 itself, or torchrun/SLURM start them all); only global rank 0 writes the
    run and prints."""
    from rich.console import Console

    from movierec.artifacts import begin_run, save_run
    from movierec.pipeline import prepared_split
    from movierec.train import (
        Parallel,
        TrainConfig,
        check_parallel,
        fit,
        launch_rank,
        resolve_device,
    )

    err = Console(stderr=True, highlight=False)
    resolve_device(device)  # fail before loading data
    parallel = Parallel(devices=devices, num_nodes=num_nodes, strategy=strategy)
    main = launch_rank(devices=devices) == 0
    config = TrainConfig.for_model(
        model,
        epochs=epochs,
        batch_size=batch,
        factors=factors,
        lr=lr,
        negatives=negatives,
        patience=patience,
        seed=seed,
        device=device,
    )
    check_parallel(config, parallel)
    # the training's files go beside --out (artifacts.work_dir), --out is replaced once the
    # new run is complete; prepared before the data loads, while other ranks load theirs
    work, notes = begin_run(out, resume=resume, main=main)
    for note in notes:
        err.print(note, markup=False, soft_wrap=True)
    ds, _, split = prepared_split(data, min_year)
    if main:
        err.print(
            f"{ds.name}: {len(split.train):,} training interactions, "
            f"{split.n_users:,} users, {split.n_items:,} movies"
        )
    result = fit(split, config, run_dir=work, resume=resume, progress=progress, parallel=parallel)
    if result.rank != 0:
        return  # rank 0 saves the run and reports
    c = result.config
    err.print(f"{c.model}: batch {c.batch_size}, lr {c.lr:.3g}, {c.epochs} epochs")
    source = {"source": data, "name": ds.name, "prepare": {"min_year": min_year}}
    save_run(out, result, ds, split, data=source, work=work)
    best = result.best
    typer.echo(
        f"best epoch {result.best_epoch}/{len(result.history)}: val HR@10 {best.val_hr10:.4f}, "
        f"NDCG@10 {best.val_ndcg10:.4f}; {result.seconds:.1f} s -> {out}"
    )


@app.command()
def compare(
    data: Data = SMALL,
    min_year: MinYear = None,
    seed: int = typer.Option(0, help="Seed for model initialisation and evaluation candidates."),
    models: str = typer.Option(
        "popularity,bpr,ials,ease,tutorial,history",
        help="Comma-separated peers (popularity, bpr, ials, ease) and our models (tutorial, "
        "gmf, mlp, neumf, history) to compare.",
    ),
    as_json: AsJson = False,
) -> None:
    """Leaderboard: peers tuned on validation and our models (epochs chosen on validation),
    test HR/NDCG@10 on both protocols, same split and candidates."""
    import json
    import sys

    from rich.console import Console

    from movierec.baselines import PEERS
    from movierec.compare import leaderboard, to_json, trained
    from movierec.display import leaderboard_table
    from movierec.pipeline import prepared_split
    from movierec.train import PRESETS

    names = _names(models)
    unknown = [n for n in names if n not in PEERS and n not in PRESETS]
    if unknown:
        known = ", ".join([*PEERS, *PRESETS])
        raise ParameterError(f"--models: unknown model(s) {', '.join(unknown)}; known: {known}")
    ours = {n: trained(n) for n in names if n in PRESETS}
    err = Console(stderr=True, highlight=False)
    ds, _, split = prepared_split(data, min_year)
    err.print(f"{ds.name}: {split.n_users:,} users, {split.n_items:,} movies, seed {seed}")
    rows = leaderboard(
        split,
        tuple(n for n in names if n in PEERS),
        seeds=(seed,),
        extra=ours,
        progress=lambda m: err.print(f"tuning {m}"),
    )
    if as_json:
        sys.stdout.write(json.dumps(to_json(rows), indent=2) + "\n")
        return
    title = f"test, tuned on validation ({ds.name}, seed {seed})"
    Console().print(leaderboard_table(rows, title))


@app.command()
def evaluate(
    run: RunDir,
    seed: int = typer.Option(0, help="Seed of the 99 sampled candidates per user."),
    as_json: AsJson = False,
) -> None:
    """Test HR@K / NDCG@K on the sampled (99 negatives) and full-catalogue protocols, and
    coverage of the top-10 lists; saved into the run as metrics.json."""
    import json

    from rich.console import Console

    from movierec.artifacts import load_run, save_metrics
    from movierec.display import metrics_lines
    from movierec.evaluate import evaluate as evaluate_run

    r = load_run(run)
    metrics = evaluate_run(r.model, r.split, seed=seed).to_dict()
    metrics["seed"] = seed
    save_metrics(run, metrics)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    console = Console()
    for line in metrics_lines(metrics):
        console.print(line)


@app.command()
def run(
    data: Data = SMALL,
    out: Path = typer.Option(Path("runs/latest"), "--out", help="Run directory to write."),
    model: str = typer.Option(DEFAULT_MODEL, help="The model to train (see `train`)."),
    min_year: MinYear = None,
    peers: str = typer.Option("popularity,bpr,ials,ease", help="Peers on the leaderboard."),
    seed: int = typer.Option(0, help="Seed for training and the sampled candidates."),
    device: Device = "auto",
    serve: bool = typer.Option(False, help="Serve the web page when done."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """The main job: prepare, train, evaluate against tuned peers, show a user's top-10."""
    from rich.console import Console

    from movierec import display
    from movierec.pipeline import main_job

    console = Console(highlight=False)
    result = main_job(
        data,
        out,
        model,
        min_year=min_year,
        peers=_names(peers),
        seed=seed,
        device=device,
        progress=progress,
        say=lambda line: console.print(line, markup=False, soft_wrap=True),
    )
    title = f"test, {result.dataset}, seed {seed} (peers on small grids; full: movierec compare)"
    console.print(display.leaderboard_table(result.leaderboard, title))
    user = result.sample
    console.print(
        display.side_by_side(
            display.movie_table(
                f"user {user.user_id} watched (latest first)", user.history, "date"
            ),
            display.movie_table(f"top 10 for user {user.user_id}", user.top, "score"),
        )
    )
    console.print(f'run saved in {out}. Next: movierec recommend {out} --liked "Toy Story"')
    console.print(f"web page: movierec serve {out}  ->  http://127.0.0.1:8000/")
    if serve:
        from movierec import service

        service.serve(str(out), None)


# --- commands: recommendations (recommend, similar, batch) ---


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


@app.command()
def recommend(
    run: RunDir,
    user: int | None = typer.Option(None, "--user", help="A MovieLens user id of the run."),
    liked: list[str] = typer.Option(
        [], "--liked", help="A movie you like: title (year optional) or id. Repeat it."
    ),
    k: TopK = 10,
    history: int = typer.Option(10, min=0, help="How much of the user's history to show."),
    as_json: AsJson = False,
) -> None:
    """Top-K unseen movies for a known user (beside their recent history), or for a new
    person who names movies they like (folded into the trained model)."""
    import json

    import numpy as np
    from rich.console import Console

    from movierec.display import MovieRows, movie_table

    if (user is None) == (not liked):
        raise ParameterError("give either --user ID or at least one --liked MOVIE")
    r = _recommender(run)
    rows = MovieRows(r.catalog)
    out: dict = {}
    if user is not None:
        idx = int(r.users.index(user)[0])
        if idx < 0:
            raise ParameterError(f"--user {user} is not in this run ({len(r.users):,} users)")
        rec = r.for_users(np.array([idx]), k)
        items, stamps = r.history(idx)
        out["user_id"] = user
        out["history"] = rows.watched(items[:history], stamps[:history])
    else:
        chosen = _resolve_liked(r, liked)
        rec = r.for_liked(np.array(chosen), k)
        out["liked"] = rows.movies(chosen)
    out["recommendations"] = rows.scored(rec.items[0], rec.scores[0])
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    console = Console()
    if "history" in out:
        console.print(movie_table(f"user {user}: recently watched", out["history"], "date"))
    else:
        console.print(movie_table("you like", out["liked"], "year"))
    console.print(movie_table(f"top {k} for you", out["recommendations"], "score"))


@app.command()
def similar(
    run: RunDir,
    movie: str = typer.Option(..., "--movie", help="Title (year optional) or movie id."),
    k: TopK = 10,
    as_json: AsJson = False,
) -> None:
    """More like this: the movies nearest to one movie in the model's item space."""
    import json

    from rich.console import Console

    from movierec.display import MovieRows, movie_table

    r = _recommender(run)
    rows = MovieRows(r.catalog)
    (idx,) = _resolve_liked(r, [movie])
    rec = r.similar(idx, k)
    out = {"movie": rows.movie(idx), "similar": rows.scored(rec.items[0], rec.scores[0])}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    Console().print(movie_table(f"like {r.catalog.display_title(idx)}", out["similar"], "score"))


@app.command()
def batch(
    run: RunDir,
    out: Path = typer.Option(..., "--out", help="SQLite store to write (replaced atomically)."),
    k: int = typer.Option(10, "--k", min=1, max=100, help="Movies per user."),
    parquet: Path | None = typer.Option(None, "--parquet", help="Also write this Parquet file."),
    chunk: int = typer.Option(2048, min=1, help="Users scored per step."),
    device: Device = "auto",
    devices: int = typer.Option(
        1, "--devices", help="Processes scoring users in parallel (GPUs 0..N-1 on cuda)."
    ),
    progress: Progress = True,
) -> None:
    """Top-K unseen movies for every user of the run, into a store that `serve` reads."""
    from movierec.recommend import write_batch
    from movierec.train import resolve_device

    if devices < 1:
        raise ParameterError(f"--devices must be at least 1, got {devices}")
    where = resolve_device(device)
    r = _recommender(run, device=str(where if where.type == "cpu" else "cuda:0"))
    meta = {"run": str(Path(run).resolve()), "model": r.run.config.model, "k": k}
    summary = write_batch(
        r, out, k, meta, chunk=chunk, parquet=parquet, devices=devices, progress=progress
    )
    typer.echo(
        f"{summary.users:,} users x top {summary.k} ({summary.rows:,} rows) in "
        f"{summary.seconds:.1f} s -> {summary.path}" + (f" and {parquet}" if parquet else "")
    )


# --- commands: service (serve) ---


@app.command()
def serve(
    run: RunDir,
    store: str | None = typer.Option(
        None, "--store", help="Precomputed recommendations written by `movierec batch`."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1: this machine)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="Processes, each with its own model copy."),
    access_log: bool = typer.Option(False, help="Log every request (costs throughput)."),
    limit_concurrency: int = typer.Option(
        2048, min=1, help="Open connections plus running requests past which requests get 503."
    ),
    timeout_keep_alive: float = typer.Option(
        5.0, min=0.1, help="Seconds an idle keep-alive connection stays open."
    ),
    request_timeout: float = typer.Option(
        10.0, min=0.1, help="Seconds a client has to send a whole request; then 408."
    ),
    max_head_bytes: int = typer.Option(
        16384, min=1024, help="Largest request line plus headers; larger gets 431."
    ),
) -> None:
    """Serve the JSON API (OpenAPI at /docs) and the web page at /. A new store written to
    the same path by `movierec batch` is picked up without a restart."""
    from movierec import service

    service.serve(
        run,
        store,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=timeout_keep_alive,
        request_timeout=request_timeout,
        max_head_bytes=max_head_bytes,
    )


if __name__ == "__main__":
    app()
