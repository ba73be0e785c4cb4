"""Command line: parse, call, print. No logic lives here.

Errors are reported in one place, ``Commands.invoke``, around every command: a
``MovierecError`` (bad input, a damaged run, a refused resume, a request the command cannot
carry out) or an ``OSError`` (a file that cannot be read or written; its message names the
file) becomes ``error: <message>`` on one line of stderr and exit status 2. Any other
exception is a bug and keeps its traceback; ``MOVIEREC_TRACEBACK=1`` shows one for the
reported errors too. Click's own usage errors (an unknown option...) also exit with 2.
"""

from __future__ import annotations

import os
from typing import Any

import click
import typer
from typer.core import TyperGroup

from movierec.errors import MovierecError, ParameterError

TRACEBACK_ENV = "MOVIEREC_TRACEBACK"
REPORTED = (MovierecError, OSError)  # what Commands.invoke turns into one line and exit 2


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

# --- commands: data (prepare, fetch, synth) ---

from pathlib import Path  # noqa: E402  (typer reads the annotations at runtime)


def _prepared_split(data: str, min_year: int | None):
    """Load, validate and prepare ``data``, then split it: (dataset, report, split)."""
    from movierec import movielens
    from movierec.prepare import prepare as prepare_dataset
    from movierec.split import leave_last_out

    ds, _ = movielens.load(data)
    ds, report = prepare_dataset(ds, min_year=min_year)
    return ds, report, leave_last_out(ds.interactions)


@app.command()
def prepare(
    data: str = typer.Option(
        "ml-latest-small", "--data", help="Directory, .zip, or release name (ml-25m, ...)."
    ),
    min_year: int | None = typer.Option(None, help="Keep movies released in this year or later."),
    min_rating: float | None = typer.Option(None, help="Keep ratings at or above this."),
    min_interactions: int = typer.Option(3, min=1, help="Drop users with fewer interactions."),
    strict: bool = typer.Option(False, help="Fail on rows that would be dropped."),
) -> None:
    """Load and validate a MovieLens release, filter it to implicit feedback, and report."""
    from rich.console import Console
    from rich.table import Table

    from movierec import movielens
    from movierec import prepare as preparing

    ds, load_report = movielens.load(data, strict=strict)
    _, report = preparing.prepare(
        ds, min_year=min_year, min_rating=min_rating, min_user_interactions=min_interactions
    )
    table = Table(title=ds.name)
    for column in ("", "users", "movies", "interactions"):
        table.add_column(column, justify="left" if not column else "right")
    rows = [("loaded", report.users_in, report.movies_in, report.interactions_in)]
    rows += [(f"dropped on load: {why}", None, None, n) for why, n in load_report.dropped.items()]
    rows += [(f"dropped: {s.reason}", s.users, s.movies, s.interactions) for s in report.steps]
    rows += [("kept", report.users, report.movies, report.interactions)]
    for label, *counts in rows:
        table.add_row(label, *("" if n is None else f"{n:,}" for n in counts))
    console = Console()
    for line in load_report.lines():
        console.print(line, highlight=False, markup=False)
    console.print(table)


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
    data: str = typer.Option(
        "ml-latest-small", "--data", help="Directory, .zip, or release name (ml-25m, ...)."
    ),
    out: Path = typer.Option(..., "--out", help="Run directory to write (and resume from)."),
    min_year: int | None = typer.Option(None, help="Keep movies released in this year or later."),
    model: str = typer.Option("tutorial", help="tutorial, gmf, mlp, neumf or history."),
    epochs: int | None = typer.Option(None, help="Maximum epochs. Default: the model's preset."),
    batch: int | None = typer.Option(None, help="Rows per step. Default: the model's preset."),
    factors: int | None = typer.Option(None, help="Embedding size. Default: the model's preset."),
    lr: float | None = typer.Option(None, help="Adam learning rate. Default: the preset."),
    negatives: int | None = typer.Option(None, help="Negatives per positive (preset: 4)."),
    patience: int | None = typer.Option(None, help="Stop after N epochs without a better val."),
    seed: int = typer.Option(0, help="Seed for initialisation, negatives and shuffling."),
    device: str = typer.Option("auto", help="auto ($MOVIEREC_DEVICE, cuda, cpu), cpu, cuda."),
    devices: int = typer.Option(
        1, "--devices", help="Processes per node: GPUs, or CPU processes (gloo). >1: DDP."
    ),
    num_nodes: int = typer.Option(1, "--num-nodes", help="Machines (DDP; needs --strategy ddp)."),
    strategy: str = typer.Option("auto", help="auto (DDP when devices x nodes > 1) or ddp."),
    resume: bool = typer.Option(False, help="Continue the interrupted run in --out."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train an NCF model; keep the epoch with the best validation HR@10; write a run.

    With --devices/--num-nodes, every process runs this same command (Lightning starts
    ranks 1..N-1 itself, or torchrun/SLURM start them all); only global rank 0 writes the
    run and prints."""
    from rich.console import Console

    from movierec.artifacts import begin_run, save_run
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
    ds, _, split = _prepared_split(data, min_year)
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
    data: str = typer.Option(
        "ml-latest-small", "--data", help="Directory, .zip, or release name (ml-25m, ...)."
    ),
    min_year: int | None = typer.Option(None, help="Keep movies released in this year or later."),
    seed: int = typer.Option(0, help="Seed for model initialisation and evaluation candidates."),
    models: str = typer.Option(
        "popularity,bpr,ials,ease,tutorial,history",
        help="Comma-separated peers (popularity, bpr, ials, ease) and our models (tutorial, "
        "gmf, mlp, neumf, history) to compare.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object, not a table."),
) -> None:
    """Leaderboard: peers tuned on validation and our models (epochs chosen on validation),
    test HR/NDCG@10 on both protocols, same split and candidates."""
    import json
    import sys

    from rich.console import Console
    from rich.table import Table

    from movierec.baselines import PEERS
    from movierec.compare import leaderboard, to_json, trained
    from movierec.train import PRESETS

    names = tuple(dict.fromkeys(m.strip() for m in models.split(",") if m.strip()))
    unknown = [n for n in names if n not in PEERS and n not in PRESETS]
    if unknown:
        known = ", ".join([*PEERS, *PRESETS])
        raise ParameterError(f"--models: unknown model(s) {', '.join(unknown)}; known: {known}")
    ours = {n: trained(n) for n in names if n in PRESETS}
    err = Console(stderr=True, highlight=False)
    ds, _, split = _prepared_split(data, min_year)
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
    table = Table(title=f"test, tuned on validation ({ds.name}, seed {seed})")
    for column in ("model", "sampled HR@10", "NDCG@10", "full HR@10", "NDCG@10", "cov@10"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_column("train s", justify="right")
    table.add_column("settings")
    for r in rows:
        s, f = r.test.sampled, r.test.full or {}
        table.add_row(
            r.model,
            *(f"{v:.3f}" for v in (s["hr@10"], s["ndcg@10"], f["hr@10"], f["ndcg@10"])),
            f"{r.test.coverage_at_10:.3f}",
            f"{r.train_seconds:.1f}",
            ", ".join(f"{k}={v:g}" for k, v in r.params.items()),
        )
    Console().print(table)


# --- commands: recommendations (recommend, similar, batch) ---


def _recommender(run: str, device: str = "cpu"):
    from movierec.recommend import Recommender

    return Recommender.load(run, device=device)


def _movie_rows(r, items, scores=None, timestamps=None) -> list[dict]:
    import datetime as dt

    out = []
    for n, i in enumerate(items):
        if i < 0:
            continue
        row = {
            "movie_id": int(r.items.raw[i]),
            "title": str(r.catalog.titles[i]),
            "year": int(r.catalog.years[i]) or None,
            "genres": [g for g in str(r.catalog.genres[i]).split("|") if g],
        }
        if scores is not None:
            row["score"] = round(float(scores[n]), 4)
        if timestamps is not None:
            row["date"] = dt.datetime.fromtimestamp(int(timestamps[n]), dt.UTC).date().isoformat()
        out.append(row)
    return out


def _movie_table(title: str, rows: list[dict], extra: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("movie")
    table.add_column("genres")
    table.add_column(extra, justify="right")
    for n, row in enumerate(rows, 1):
        year = f" ({row['year']})" if row["year"] else ""
        value = row.get(extra)
        table.add_row(
            str(n),
            f"{row['title']}{year}",
            ", ".join(row["genres"]),
            f"{value:.3f}" if isinstance(value, float) else str(value),
        )
    return table


def _resolve_liked(r, liked: list[str]) -> list[int]:
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
    run: str = typer.Argument(..., help="Run directory written by `movierec train`."),
    user: int | None = typer.Option(None, "--user", help="A MovieLens user id of the run."),
    liked: list[str] = typer.Option(
        [], "--liked", help="A movie you like: title (year optional) or id. Repeat it."
    ),
    k: int = typer.Option(10, "--k", min=1, max=1000, help="How many movies."),
    history: int = typer.Option(10, min=0, help="How much of the user's history to show."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Top-K unseen movies for a known user (beside their recent history), or for a new
    person who names movies they like (folded into the trained model)."""
    import json

    import numpy as np
    from rich.console import Console

    if (user is None) == (not liked):
        raise ParameterError("give either --user ID or at least one --liked MOVIE")
    r = _recommender(run)
    out: dict = {}
    if user is not None:
        idx = int(r.users.index(user)[0])
        if idx < 0:
            raise ParameterError(f"--user {user} is not in this run ({len(r.users):,} users)")
        rec = r.for_users(np.array([idx]), k)
        items, stamps = r.history(idx)
        out["user_id"] = user
        out["history"] = _movie_rows(r, items[:history], timestamps=stamps[:history])
    else:
        chosen = _resolve_liked(r, liked)
        rec = r.for_liked(np.array(chosen), k)
        out["liked"] = _movie_rows(r, chosen)
    out["recommendations"] = _movie_rows(r, rec.items[0], rec.scores[0])
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    console = Console()
    if "history" in out:
        console.print(_movie_table(f"user {user}: recently watched", out["history"], "date"))
    else:
        console.print(_movie_table("you like", out["liked"], "year"))
    console.print(_movie_table(f"top {k} for you", out["recommendations"], "score"))


@app.command()
def similar(
    run: str = typer.Argument(..., help="Run directory written by `movierec train`."),
    movie: str = typer.Option(..., "--movie", help="Title (year optional) or movie id."),
    k: int = typer.Option(10, "--k", min=1, max=1000, help="How many movies."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """More like this: the movies nearest to one movie in the model's item space."""
    import json

    from rich.console import Console

    r = _recommender(run)
    (idx,) = _resolve_liked(r, [movie])
    rec = r.similar(idx, k)
    out = {
        "movie": _movie_rows(r, [idx])[0],
        "similar": _movie_rows(r, rec.items[0], rec.scores[0]),
    }
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    Console().print(_movie_table(f"like {r.catalog.display_title(idx)}", out["similar"], "score"))


@app.command()
def batch(
    run: str = typer.Argument(..., help="Run directory written by `movierec train`."),
    out: Path = typer.Option(..., "--out", help="SQLite store to write (replaced atomically)."),
    k: int = typer.Option(10, "--k", min=1, max=100, help="Movies per user."),
    parquet: Path | None = typer.Option(None, "--parquet", help="Also write this Parquet file."),
    chunk: int = typer.Option(2048, min=1, help="Users scored per step."),
    device: str = typer.Option("auto", help="auto ($MOVIEREC_DEVICE, cuda, cpu), cpu, cuda."),
    devices: int = typer.Option(
        1, "--devices", help="Processes scoring users in parallel (GPUs 0..N-1 on cuda)."
    ),
    progress: bool = typer.Option(True, help="Show the progress bar."),
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


@app.command()
def evaluate(
    run: str = typer.Argument(..., help="Run directory written by `movierec train`."),
    seed: int = typer.Option(0, help="Seed of the 99 sampled candidates per user."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Test HR@K / NDCG@K on the sampled (99 negatives) and full-catalogue protocols, and
    coverage of the top-10 lists; saved into the run as metrics.json."""
    import json

    from rich.console import Console

    from movierec.artifacts import load_run, save_metrics
    from movierec.evaluate import evaluate as evaluate_run

    r = load_run(run)
    metrics = evaluate_run(r.model, r.split, seed=seed).to_dict()
    metrics["seed"] = seed
    save_metrics(run, metrics)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    console = Console()
    for protocol in ("sampled", "full"):
        figures = ", ".join(f"{k} {v:.4f}" for k, v in metrics[protocol].items() if "@" in k)
        console.print(f"{protocol:>7}: {figures} ({metrics[protocol]['users']:,} users)")
    console.print(f"coverage@10: {metrics['coverage@10']:.4f}")


DEFAULT_MODEL = "history"  # chosen on validation: see bench/RESULTS.md, "Quality"


def _leaderboard_table(rows, title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("model", "sampled HR@10", "NDCG@10", "full HR@10", "NDCG@10", "cov@10"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_column("train s", justify="right")
    table.add_column("settings (chosen on validation)")
    best = max(rows, key=lambda r: r.test.sampled["hr@10"]).model
    for r in sorted(rows, key=lambda r: -r.test.sampled["hr@10"]):
        s, f = r.test.sampled, r.test.full or {}
        name = f"[bold]{r.model}[/]" if r.model == best else r.model
        table.add_row(
            name,
            *(f"{v:.3f}" for v in (s["hr@10"], s["ndcg@10"], f["hr@10"], f["ndcg@10"])),
            f"{r.test.coverage_at_10:.3f}",
            f"{r.train_seconds:.1f}",
            ", ".join(f"{k}={v}" for k, v in r.params.items()),
        )
    return table


@app.command()
def run(
    data: str = typer.Option(
        "ml-latest-small", "--data", help="Directory, .zip, or release name (ml-25m, ...)."
    ),
    out: Path = typer.Option(Path("runs/latest"), "--out", help="Run directory to write."),
    model: str = typer.Option(DEFAULT_MODEL, help="The model to train (see `train`)."),
    min_year: int | None = typer.Option(None, help="Keep movies released in this year or later."),
    peers: str = typer.Option("popularity,bpr,ials,ease", help="Peers on the leaderboard."),
    seed: int = typer.Option(0, help="Seed for training and the sampled candidates."),
    device: str = typer.Option("auto", help="auto ($MOVIEREC_DEVICE, cuda, cpu), cpu, cuda."),
    serve: bool = typer.Option(False, help="Serve the web page when done."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """The main job: prepare, train, evaluate against tuned peers, show a user's top-10."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from movierec.artifacts import begin_run, check_replaceable, save_run
    from movierec.baselines import PEERS
    from movierec.compare import QUICK_GRIDS, Fitted, leaderboard
    from movierec.history import HistoryModel, scorer_for
    from movierec.recommend import Recommender
    from movierec.train import TrainConfig, fit

    console = Console(highlight=False)
    names = tuple(dict.fromkeys(p.strip() for p in peers.split(",") if p.strip()))
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        known = ", ".join(PEERS)
        raise ParameterError(f"--peers: unknown peer(s) {', '.join(unknown)}; known: {known}")
    check_replaceable(out)
    config = TrainConfig.for_model(model, seed=seed, device=device)
    ds, report, split = _prepared_split(data, min_year)
    console.print(
        f"[bold]{ds.name}[/]: {report.interactions:,} interactions, {report.users:,} users, "
        f"{report.movies:,} movies; leave-last-out: {len(split.test):,} test users"
    )
    work, notes = begin_run(out)  # --out is replaced only once the new run is complete
    for note in notes:
        console.print(note, markup=False, soft_wrap=True)
    console.print(f"training {model} ({config.epochs} epochs at most, best on validation)")
    result = fit(split, config, run_dir=work, progress=progress)
    source = {"source": data, "name": ds.name, "prepare": {"min_year": min_year}}
    save_run(out, result, ds, split, data=source, work=work)

    def ours(_split, _seed) -> Fitted:
        params = {"epochs": result.best_epoch, "factors": result.config.factors}
        val = None
        if isinstance(result.model, HistoryModel):  # validation sees train history only
            val = scorer_for(result.model, split, "validation")
        return Fitted(result.scorer(), params, result.seconds, validation_scorer=val)

    rows = leaderboard(
        split,
        names,
        seeds=(seed,),
        extra={model: ours},
        grids=QUICK_GRIDS,
        progress=lambda m: console.print(f"tuning and evaluating {m}"),
    )
    title = f"test, {ds.name}, seed {seed} (peers on small grids; full: movierec compare)"
    console.print(_leaderboard_table(rows, title))

    rec = Recommender.load(out)
    counts = np.diff(rec.timeline.indptr)
    user = int(np.argsort(counts, kind="stable")[len(counts) // 2])  # a typical user
    items, stamps = rec.history(user)
    top = rec.for_users(np.array([user]), 10)
    raw = int(rec.users.raw[user])
    side = Table.grid(padding=(0, 4))
    side.add_row(
        _movie_table(
            f"user {raw} watched (latest first)",
            _movie_rows(rec, items[:10], timestamps=stamps[:10]),
            "date",
        ),
        _movie_table(
            f"top 10 for user {raw}", _movie_rows(rec, top.items[0], top.scores[0]), "score"
        ),
    )
    console.print(side)
    console.print(f'run saved in {out}. Next: movierec recommend {out} --liked "Toy Story"')
    console.print(f"web page: movierec serve {out}  ->  http://127.0.0.1:8000/")
    if serve:
        from movierec import service

        service.serve(str(out), None)


# --- commands: service (serve) ---


@app.command()
def serve(
    run: str = typer.Argument(..., help="Run directory written by `movierec train`."),
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
