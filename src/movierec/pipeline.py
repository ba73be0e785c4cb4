"""The main job (``movierec run``): prepare a data set, train a model into a run directory,
put it on a leaderboard against peers tuned on validation, and pick a typical user's top 10.

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
from movierec.compare import DEFAULT_PEERS, QUICK_GRIDS, Fitted, Row, leaderboard
from movierec.data import Dataset
from movierec.display import MovieRows
from movierec.errors import ParameterError
from movierec.models import scorer_for
from movierec.prepare import PrepareReport, prepare
from movierec.recommend import Recommender
from movierec.split import Split, leave_last_out

SAMPLE_ROWS = 10  # movies of the sample user's history and top list


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
    leaderboard: list[Row]  # our model and the peers, as ``compare.leaderboard`` returns
    run_dir: Path  # the run written
    sample: SampleUser


def _quiet(line: str) -> None:
    pass


def main_job(
    data: str,
    out: str | Path,
    model: str,
    *,
    min_year: int | None = None,
    peers: Sequence[str] = DEFAULT_PEERS,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    say: Callable[[str], None] = _quiet,
) -> MainResult:
    """Prepare ``data``, train ``model`` (a ``train.PRESETS`` name) into the run ``out``
    (replaced only once the new run is complete), evaluate it against ``peers`` on their
    small grids, same split and candidates, and take a typical user's history and top 10
    from the saved run."""
    names = check_peers(peers)
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
        params = {"epochs": result.best_epoch, "factors": result.config.factors}
        val = scorer_for(result.model, split, "validation")  # inputs: train only
        return Fitted(result.scorer(), params, result.seconds, validation_scorer=val)

    rows = leaderboard(
        split,
        names,
        seeds=(seed,),
        extra={model: ours},
        grids=QUICK_GRIDS,
        progress=lambda m: say(f"tuning and evaluating {m}"),
    )
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
        sample=sample_user(Recommender.load(out)),
    )


def sample_user(rec: Recommender) -> SampleUser:
    """The user with the median number of training interactions (ties: the lowest index)."""
    counts = np.diff(rec.timeline.indptr)
    user = int(np.argsort(counts, kind="stable")[len(counts) // 2])  # a typical user
    items, stamps = rec.history(user)
    top = rec.for_users(np.array([user]), SAMPLE_ROWS)
    rows = MovieRows(rec.catalog)
    return SampleUser(
        user_id=int(rec.users.raw[user]),
        history=rows.watched(items[:SAMPLE_ROWS], stamps[:SAMPLE_ROWS]),
        top=rows.scored(top.items[0], top.scores[0]),
    )
