"""Commands for training and evaluation: train, compare, evaluate, run."""

from __future__ import annotations

from pathlib import Path

import typer

from movierec.cli.group import (
    DEFAULT_CANDIDATES,
    DEFAULT_MODEL,
    SMALL,
    AsJson,
    Data,
    Device,
    MinYear,
    Progress,
    RunDir,
    app,
    comma_list,
)
from movierec.errors import ParameterError


@app.command()
def train(
    data: Data = SMALL,
    out: Path = typer.Option(..., "--out", help="Run directory to write (and resume from)."),
    min_year: MinYear = None,
    model: str = typer.Option(DEFAULT_MODEL, help="One of the models `movierec --help` lists."),
    epochs: int | None = typer.Option(None, help="Maximum epochs. Default: the model's preset."),
    batch: int | None = typer.Option(None, help="Rows per step. Default: the model's preset."),
    factors: int | None = typer.Option(None, help="Embedding size. Default: the model's preset."),
    lr: float | None = typer.Option(None, help="Adam learning rate. Default: the preset."),
    negatives: int | None = typer.Option(None, help="Negatives per positive (preset: 4)."),
    dropout: float | None = typer.Option(None, help="Dropout (mlp towers, sasrec blocks)."),
    loss: str | None = typer.Option(
        None, help="sasrec: full | sampled softmax (preset auto: full up to 30k movies)."
    ),
    length: int | None = typer.Option(
        None, help="history / sasrec: the latest movies a user is read as (presets 20 / 200)."
    ),
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
    """Train a model (any of `--model`); keep the epoch with the best validation HR@10; write a run.

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
        dropout=dropout,
        loss=loss,
        length=length,
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
    seeds: int = typer.Option(
        1, min=1, max=20, help="How many seeds (seed, seed+1, ...): figures as mean ± std."
    ),
    models: str = typer.Option(
        "popularity,bpr,ials,ease,tutorial,history",
        help="Comma-separated peers (popularity, bpr, ials, ease) and our models (tutorial, "
        "gmf, mlp, neumf, history) to compare.",
    ),
    as_json: AsJson = False,
) -> None:
    """Leaderboard: peers tuned on validation and our models (epochs chosen on validation),
    test HR/NDCG@10 on both protocols, same split and candidates."""
    import dataclasses
    import json
    import sys

    from rich.console import Console

    from movierec import display
    from movierec.baselines import PEERS
    from movierec.compare import leaderboard, summarize, to_json, trained
    from movierec.pipeline import prepared_split
    from movierec.standing import standing, validation_choice
    from movierec.train import PRESETS

    names = comma_list(models)
    unknown = [n for n in names if n not in PEERS and n not in PRESETS]
    if unknown:
        known = ", ".join([*PEERS, *PRESETS])
        raise ParameterError(f"--models: unknown model(s) {', '.join(unknown)}; known: {known}")
    ours = {n: trained(n) for n in names if n in PRESETS}
    err = Console(stderr=True, highlight=False)
    ds, _, split = prepared_split(data, min_year)
    chosen = tuple(range(seed, seed + seeds))
    err.print(f"{ds.name}: {split.n_users:,} users, {split.n_items:,} movies, seeds {chosen}")
    rows = leaderboard(
        split,
        tuple(n for n in names if n in PEERS),
        seeds=chosen,
        extra=ours,
        progress=lambda m: err.print(f"tuning {m}"),
    )
    paired = standing(rows, DEFAULT_MODEL, seed=seed)
    choice = validation_choice(rows, DEFAULT_CANDIDATES, DEFAULT_MODEL)
    if as_json:
        out = to_json(rows) if seeds == 1 else summarize(rows)
        out["paired"] = [dataclasses.asdict(d) | {"verdict": d.verdict()} for d in paired]
        if choice is not None:
            out["validation_choice"] = dataclasses.asdict(choice) | {"winner": choice.winner}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    title = f"test, tuned on validation ({ds.name}, seeds {', '.join(map(str, chosen))})"
    console = Console()
    console.print(display.leaderboard(rows, title))
    for d in paired:
        console.print(d.verdict(), markup=False, highlight=False)
    if choice is not None:
        console.print(choice.line(), markup=False, highlight=False)


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
    """The main job: prepare, train, leaderboard, a user's top-10, the run's report.

    The leaderboard: the model against peers tuned on validation and the NCF family, saved
    into the run (leaderboard.json) with its report (report.html)."""
    from rich.console import Console

    from movierec import display
    from movierec.pipeline import main_job
    from movierec.standing import standing

    console = Console(highlight=False)
    result = main_job(
        data,
        out,
        model,
        min_year=min_year,
        peers=comma_list(peers),
        seed=seed,
        device=device,
        progress=progress,
        say=lambda line: console.print(line, markup=False, soft_wrap=True),
    )
    console.print(display.leaderboard(result.leaderboard, f"test, {result.dataset}, seed {seed}"))
    console.print("(peers tuned on small grids here; `movierec compare` tunes on the full ones)")
    for d in standing(result.leaderboard, model, seed=seed):
        console.print(d.verdict(), markup=False, highlight=False)
    user = result.sample
    console.print(
        display.side_by_side(
            display.movie_table(
                f"user {user.user_id} watched (latest first)", user.history, "date"
            ),
            display.movie_table(
                f"top 10 for user {user.user_id}", user.top, "score", "because you watched"
            ),
        )
    )
    console.print(f'run saved in {out}. Next: movierec recommend {out} --liked "Toy Story"')
    console.print(f"web page: movierec serve {out}  ->  http://127.0.0.1:8000/")
    page = result.report_file
    console.print(
        f"report: {page.path} ({page.bytes / 1e6:.1f} MB, built in {page.seconds:.1f} s); "
        "open it in a browser",
        markup=False,
    )
    if serve:
        from movierec import service

        service.serve(str(out), None)
