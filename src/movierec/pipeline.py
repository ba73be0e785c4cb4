"""The main job (``movierec run``): prepare a data set, train a model into a run directory,
put it on a leaderboard against peers tuned on validation and our other models (the NCF
family: the tutorial's model and NeuMF), keep that leaderboard in the run
(``leaderboard.json``), write the run's report (``report.html``) and pick a typical user's
top 10.

``main_job`` returns everything it found as a ``MainResult``; what it prints on the way
goes through ``say`` (one plain line at a time), so the caller decides where it goes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from movierec import movielens, train
from movierec.artifacts import begin_run, check_replaceable, save_run
from movierec.baselines import PEERS
from movierec.compare import (
    DEFAULT_PEERS,
    QUICK_GRIDS,
    Contender,
    Fitted,
    Row,
    from_training,
    leaderboard,
    trained,
)
from movierec.data import Dataset
from movierec.display import MovieRows
from movierec.errors import ParameterError
from movierec.prepare import PrepareReport, prepare
from movierec.recommend import Recommender
from movierec.report import ReportFile, write_board, write_report
from movierec.split import Split, leave_last_out

SAMPLE_ROWS = 10  # movies of the sample user's history and top list
# our other models on the board, each trained with its preset, epoch chosen on validation
# (ml-latest-small, 2 cores: tutorial ~7 s, NeuMF ~50 s)
NCF_FAMILY: tuple[str, ...] = ("tutorial", "neumf")


def prepared_split(data: str, min_year: int | None) -> tuple[Dataset, PrepareReport, Split]:
    """Load, validate and prepare ``data``, then split it: (dataset, report, split)."""
    ds, _ = movielens.load(data)
    ds, report = prepare(ds, min_year=min_year)
    return ds, report, leave_last_out(ds.interactions)


def check_peers(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` without repeats, in order; ``ParameterError`` naming any unknown peer."""
    unique = tuple(dict.fromkeys(names))
    unknown = [n for n in unique if n not in PEERS]
    if unknown:
        known = ", ".join(PEERS)
        raise ParameterError(f"--peers: unknown peer(s) {', '.join(unknown)}; known: {known}")
    return unique


def our_others(model: str, names: Sequence[str]) -> dict[str, Contender]:
    """Our models ``names`` (``train.PRESETS``, repeats and ``model`` itself dropped) as
    contenders; ``ParameterError`` naming any unknown one."""
    unknown = [n for n in names if n not in train.PRESETS]
    if unknown:
        known = ", ".join(train.PRESETS)
        raise ParameterError(f"unknown model(s) {', '.join(unknown)}; known: {known}")
    return {n: trained(n) for n in dict.fromkeys(names) if n != model}


@dataclass(frozen=True)
class SampleUser:
    """A typical user of the run (median number of training interactions): what they
    watched, latest first, and their top 10, as ``display`` movie objects."""

    user_id: int  # raw MovieLens id
    history: list[dict[str, Any]]  # with "timestamp"
    top: list[dict[str, Any]]  # with "score"


@dataclass(frozen=True)
class MainResult:
    dataset: str  # the data set's name (ml-latest-small, ...)
    report: PrepareReport  # what preparing kept and dropped
    users: int  # users and movies of the split (index spaces)
    movies: int
    train_interactions: int
    test_users: int  # users with a validation and a test interaction (leave-last-out)
    model: str
    seed: int
    leaderboard: list[Row]  # the peers, our model, our others (``compare.leaderboard``)
    run_dir: Path  # the run written, with its leaderboard.json and report.html
    sample: SampleUser
    report_file: ReportFile  # the run's report: path, size, seconds to build


def _quiet(line: str) -> None:
    pass


def main_job(
    data: str,
    out: str | Path,
    model: str,
    *,
    min_year: int | None = None,
    peers: Sequence[str] = DEFAULT_PEERS,
    others: Sequence[str] = NCF_FAMILY,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    say: Callable[[str], None] = _quiet,
) -> MainResult:
    """Prepare ``data``, train ``model`` (a ``train.PRESETS`` name) into the run ``out``
    (replaced only once the new run is complete), evaluate it against ``peers`` on their
    small grids and against our ``others`` (their presets), same split and candidates;
    save that leaderboard into the run and write its report; take a typical user's history
    and top 10 from the saved run."""
    names = check_peers(peers)
    also = our_others(model, others)
    check_replaceable(out)
    config = train.TrainConfig.for_model(model, seed=seed, device=device)
    ds, report, split = prepared_split(data, min_year)
    say(
        f"{ds.name}: {report.interactions:,} interactions, {report.users:,} users, "
        f"{report.movies:,} movies; leave-last-out: {len(split.test):,} test users"
    )
    work, notes = begin_run(out)  # --out is replaced only once the new run is complete
    for note in notes:
        say(note)
    say(f"training {model} ({config.epochs} epochs at most, best on validation)")
    result = train.fit(split, config, run_dir=work, progress=progress)
    source = {"source": data, "name": ds.name, "prepare": {"min_year": min_year}}
    save_run(out, result, ds, split, data=source, work=work)

    def ours(_split, _seed) -> Fitted:
        return from_training(result, split)  # test inputs: train + validation, as every model

    rows = leaderboard(
        split,
        names,
        seeds=(seed,),
        extra={model: ours, **also},
        grids=QUICK_GRIDS,
        progress=lambda m: say(f"tuning and evaluating {m}"),
    )
    write_board(out, rows, ds.name)
    rec = Recommender.load(out)
    say("writing the report")
    report_file = write_report(rec)
    return MainResult(
        dataset=ds.name,
        report=report,
        users=split.n_users,
        movies=split.n_items,
        train_interactions=len(split.train),
        test_users=len(split.test),
        model=model,
        seed=seed,
        leaderboard=rows,
        run_dir=Path(out),
        sample=sample_user(rec),
        report_file=report_file,
    )


def sample_user(rec: Recommender) -> SampleUser:
    """The user with the median number of training interactions (ties: the lowest index)."""
    counts = np.diff(rec.timeline.indptr)
    user = int(np.argsort(counts, kind="stable")[len(counts) // 2])  # a typical user
    items, stamps = rec.history(user)
    top = rec.for_users(np.array([user]), SAMPLE_ROWS, because=True)
    rows = MovieRows(rec.catalog)
    return SampleUser(
        user_id=int(rec.users.raw[user]),
        history=rows.watched(items[:SAMPLE_ROWS], stamps[:SAMPLE_ROWS]),
        top=rows.scored(top.items[0], top.scores[0], top.because[0]),
    )
