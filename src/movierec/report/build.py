"""A run's report from start to file: gather, plot, assemble, write (atomically)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from movierec import atomic
from movierec.artifacts import REPORT
from movierec.recommend import Recommender
from movierec.report import figures
from movierec.report.gather import ReportData, gather
from movierec.report.page import Section, board_table, document, facts_table

# the section ids, in page order (tests and links find the sections by them)
TRAINING, LEADERBOARD, POPULARITY, EMBEDDING, DATA = (
    "training",
    "leaderboard",
    "popularity",
    "embedding",
    "data",
)
NO_BOARD = (
    "no leaderboard in this run (train it with `movierec run`, which saves its leaderboard "
    "beside the model; `movierec compare` prints one without a run)"
)


@dataclass(frozen=True)
class ReportFile:
    """A report written: where, how large (bytes), how long building and writing took."""

    path: Path
    bytes: int
    seconds: float


def training_section(data: ReportData) -> Section:
    c = data.curves
    heading = "Training curves"
    if not len(c.epochs):
        return Section(TRAINING, heading, notes=["no training epochs in this run's train log"])
    text = (
        f"Mean training loss and sampled validation HR@10 / NDCG@10 after each of the "
        f"{len(c.epochs)} epochs; the dashed line marks the epoch whose weights the run keeps "
        "(the best validation HR@10)."
    )
    return Section(TRAINING, heading, [text], [(figures.png(figures.training_curves(c)), text)])


def leaderboard_section(data: ReportData) -> Section:
    heading = "Leaderboard"
    rows = data.board
    if not rows:
        return Section(LEADERBOARD, heading, notes=[NO_BOARD])
    seeds = sorted({r.seed for r in rows})
    text = (
        "Test HR@10 and NDCG@10 on both protocols (the held-out movie against 99 sampled "
        "unseen ones, and against every unseen movie), each contender's settings or epochs "
        "chosen on validation, same split and candidates; "
        + (
            f"mean over seeds {', '.join(map(str, seeds))} with ± one standard deviation."
            if len(seeds) > 1
            else f"one seed ({seeds[0]}), so no spread to show."
        )
    )
    title = f"test, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    image = (figures.png(figures.leaderboard(rows)), "leaderboard: test HR@10 and NDCG@10")
    return Section(LEADERBOARD, heading, [text], [image], [board_table(rows, title)])


def popularity_section(data: ReportData) -> Section:
    p = data.popularity
    who = "every user" if p.users == p.of_users else f"{p.users:,} of {p.of_users:,} users"
    text = [
        f"Top-10 lists of {who} (movies they have not watched): {p.coverage:.1%} of the "
        f"{len(p.catalogue):,} movies are recommended to someone (catalogue coverage).",
        f"{p.head_recommended:.0%} of the recommendations go to the 10% most popular movies, "
        f"against {p.head_watched:.0%} of what users watched. A recommended movie has "
        f"{np.median(p.recommended):,.0f} interactions (median over the lists' slots), a "
        f"watched one {np.median(p.watched):,.0f} (over interactions), a movie of the "
        f"catalogue {np.median(p.catalogue):,.0f}.",
    ]
    image = (figures.png(figures.popularity(p)), "popularity of the recommended movies")
    return Section(POPULARITY, "Popularity bias", text, [image])


def embedding_section(data: ReportData) -> Section:
    e = data.embedding
    text = (
        f"The {len(e.xy):,} most watched movies, each placed by its item vector (the model's "
        "`item_vectors`, which `movierec similar` ranks by) on the vectors' first two "
        f"principal components; colour: the first genre listed; labelled: {len(e.labels)} "
        "of the most watched, spread apart."
    )
    image = (figures.png(figures.embedding(e)), "map of the item vectors")
    return Section(EMBEDDING, "Embedding map", [text], [image])


def data_section(data: ReportData) -> Section:
    s = data.shape
    span = f"from {s.years[0]} to {s.years[-1]}" if len(s.years) else "with no dates"
    text = (
        f"{len(s.per_user):,} users and {len(s.per_movie):,} movies, "
        f"{int(s.per_movie.sum()):,} interactions (train, validation and test) {span}. "
        f"A user has {np.median(s.per_user):.0f} interactions (median), a movie "
        f"{np.median(s.per_movie):.0f}."
    )
    image = (figures.png(figures.data_shape(s)), "interactions per user, movie and year")
    return Section(DATA, "The data set", [text], [image])


def build_report(rec: Recommender) -> str:
    """The report of the run ``rec`` was loaded from, as one HTML document."""
    data = gather(rec)
    sections = [
        training_section(data),
        leaderboard_section(data),
        popularity_section(data),
        embedding_section(data),
        data_section(data),
    ]
    return document(data.title, facts_table(data.facts), sections)


def write_report(rec: Recommender, out: str | Path | None = None) -> ReportFile:
    """Build the report and write it to ``out`` (default ``RUN/report.html``), beside and
    then renamed, so a reader never sees half a page."""
    started = time.perf_counter()
    path = Path(out) if out is not None else rec.run.path / REPORT
    atomic.write_text(path, build_report(rec))
    return ReportFile(path, path.stat().st_size, time.perf_counter() - started)
