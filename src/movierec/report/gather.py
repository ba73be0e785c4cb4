"""What the report shows, read from a run: typed arrays per section, no figure yet.

Everything comes from the run directory (its verified files, the train log, and
``leaderboard.json`` when the main job wrote one) and from the run's model through the
``Recommender`` (top-10 lists, item vectors), so the same run always gives the same report.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from movierec import metrics
from movierec.artifacts import ArtifactError
from movierec.compare import Row
from movierec.recommend import Recommender
from movierec.report import stats
from movierec.report.board import read_board
from movierec.training.files import TRAIN_LOG, EpochLog

TOP_K = 10
MAX_USERS = 2000  # top-10 lists computed for at most this many users (evenly spread)
USER_BATCH = 512
MAP_ITEMS = 3000  # the most popular movies drawn on the embedding map
LABELLED = 12  # of which this many carry their title: the most popular ones, spread out
LABEL_DISTANCE = 0.08  # apart by at least this fraction of the map's extent


@dataclass(frozen=True)
class Curves:
    """Per training epoch (1-based), and the epoch kept (best validation HR@10)."""

    epochs: np.ndarray
    loss: np.ndarray
    val_hr10: np.ndarray
    val_ndcg10: np.ndarray
    best_epoch: int | None


@dataclass(frozen=True)
class Popularity:
    """How popular the recommended movies are, against the catalogue and what was watched;
    a movie's popularity is its number of interactions in the run."""

    users: int  # users whose top-10 was computed
    of_users: int  # users in the run
    catalogue: np.ndarray  # per movie: its interactions
    recommended: np.ndarray  # per top-10 slot: the movie's interactions
    watched: np.ndarray  # per interaction: the movie's interactions
    coverage: float  # share of the catalogue in at least one of the top-10 lists
    head_recommended: float  # share of the slots going to the 10% most popular movies
    head_watched: float  # same for interactions
    concentration_recommended: np.ndarray  # cumulative share to the N most popular movies
    concentration_watched: np.ndarray


@dataclass(frozen=True)
class EmbeddingMap:
    """The most popular movies' item vectors on their first two principal components."""

    xy: np.ndarray  # (n, 2)
    variance: np.ndarray  # (2,) share of variance of each component
    genre: np.ndarray  # (n,) main genre (or stats.OTHER)
    genres: list[str]  # colour groups, most common first
    labels: list[tuple[int, str]]  # (row of xy, title): well-known movies, spread out


@dataclass(frozen=True)
class Shape:
    """The data set's shape: interactions per user, per movie and per year."""

    per_user: np.ndarray
    per_movie: np.ndarray
    years: np.ndarray
    per_year: np.ndarray


@dataclass(frozen=True)
class ReportData:
    title: str
    facts: list[tuple[str, str]]  # (label, value) lines at the top
    curves: Curves
    board: list[Row] | None
    popularity: Popularity
    embedding: EmbeddingMap
    shape: Shape


def gather(rec: Recommender) -> ReportData:
    """Every section's data for the run ``rec`` was loaded from."""
    run = rec.run
    return ReportData(
        title=f"movierec report: {run.config.model} on {run.data.get('name') or 'its data'}",
        facts=facts(rec),
        curves=read_curves(run.path / TRAIN_LOG, run.training),
        board=read_board(run.path),
        popularity=popularity(rec),
        embedding=embedding_map(rec),
        shape=shape(rec),
    )


def facts(rec: Recommender) -> list[tuple[str, str]]:
    """(label, value) lines about the run: model, data, training, and its test figures when
    ``movierec evaluate`` saved them."""
    run, t, m = rec.run, rec.run.training, rec.run.metrics or {}
    sizes = f"{len(rec.users):,} / {len(rec.items):,} / {int(rec.popularity.sum()):,}"
    out = [
        ("model", run.config.model),
        ("data", str(run.data.get("name") or run.data.get("source") or "unknown")),
        ("users / movies / interactions", sizes),
    ]
    if t.get("best_epoch") is not None:
        out.append(("epoch kept", f"{t['best_epoch']} of {t.get('epochs_run')}"))
    if t.get("best_val_hr@10") is not None:
        val = f"{t['best_val_hr@10']:.4f} / {t['best_val_ndcg@10']:.4f}"
        out.append(("validation HR@10 / NDCG@10 (sampled)", val))
    if t.get("seconds") is not None:
        out.append(("training", f"{t['seconds']:.1f} s on {t.get('device', '?')}"))
    for protocol in ("sampled", "full"):
        if "hr@10" in m.get(protocol, {}):
            test = f"{m[protocol]['hr@10']:.4f} / {m[protocol]['ndcg@10']:.4f}"
            out.append((f"test HR@10 / NDCG@10 ({protocol}, movierec evaluate)", test))
    return out


def read_curves(path: Path, training: dict[str, Any]) -> Curves:
    """The run's train log (``training.files.TRAIN_LOG``) as arrays."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if not rows or tuple(rows[0]) != EpochLog.CSV_HEADER:
            raise ValueError(f"header is not {','.join(EpochLog.CSV_HEADER)}")
        table = np.array(rows[1:], dtype=np.float64).reshape(-1, len(EpochLog.CSV_HEADER))
    except FileNotFoundError:
        table = np.zeros((0, len(EpochLog.CSV_HEADER)))
    except ValueError as e:
        raise ArtifactError(path, f"unreadable: {e}") from None
    best = training.get("best_epoch")
    return Curves(
        epochs=table[:, 0].astype(np.int64),
        loss=table[:, 1],
        val_hr10=table[:, 2],
        val_ndcg10=table[:, 3],
        best_epoch=None if best is None else int(best),
    )


def top_lists(rec: Recommender, users: np.ndarray) -> np.ndarray:
    """(len(users), TOP_K) item indices (-1: padding) of the users' top-10 unseen movies."""
    blocks = [
        rec.for_users(users[s : s + USER_BATCH], TOP_K).items
        for s in range(0, len(users), USER_BATCH)
    ]
    return np.concatenate(blocks) if blocks else np.zeros((0, TOP_K), dtype=np.int32)


def popularity(rec: Recommender) -> Popularity:
    counts = rec.popularity
    users = stats.spread_users(len(rec.users), MAX_USERS)
    top = top_lists(rec, users)
    slots = top[top >= 0]
    watched = rec.timeline.items
    return Popularity(
        users=len(users),
        of_users=len(rec.users),
        catalogue=counts,
        recommended=counts[slots],
        watched=counts[watched],
        coverage=metrics.coverage(top, len(counts)),
        head_recommended=stats.head_share(slots, counts),
        head_watched=stats.head_share(watched, counts),
        concentration_recommended=stats.concentration(slots, counts),
        concentration_watched=stats.concentration(watched, counts),
    )


def embedding_map(rec: Recommender) -> EmbeddingMap:
    counts = rec.popularity
    rows = np.argsort(-counts, kind="stable")[:MAP_ITEMS]
    vectors = rec.model.item_vectors().detach().float().cpu().numpy()[rows]
    xy, variance = stats.project_2d(vectors)
    genre, genres = stats.main_genres(rec.catalog.genres[rows])
    titles = rec.catalog.titles[rows]
    return EmbeddingMap(
        xy=xy,
        variance=variance,
        genre=genre,
        genres=genres,
        labels=[
            (i, str(titles[i]))
            for i in stats.spread_labels(xy, np.arange(len(rows)), LABELLED, LABEL_DISTANCE)
        ],
    )


def shape(rec: Recommender) -> Shape:
    years, per_year = np.unique(stats.years_of(rec.timeline.timestamps), return_counts=True)
    return Shape(
        per_user=np.diff(rec.timeline.indptr),
        per_movie=rec.popularity,
        years=years,
        per_year=per_year,
    )
