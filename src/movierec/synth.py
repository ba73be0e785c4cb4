"""A synthetic data set shaped like MovieLens 25M, for speed and memory benchmarks.

``synth(out_dir, scale)`` writes ``ratings.csv``, ``movies.csv`` and ``links.csv`` in the
ML-25M format (sorted by user, then movie; titles quoted where they hold commas and ending
in ``(YYYY)``; IMDb ids zero-padded to 7 digits, a few TMDB ids empty: made-up numbers, so
the links lead to unrelated pages). At scale 1: 162,541 users, 62,423 movies, about 22.6M
ratings; users scale linearly, movies with the square root of the scale.

Shape: release years 1900-2019 with a third of the catalogue from 2010 on; Zipf-like
movie popularity, four times weaker for 2010+ movies (so about one rating in eight is of
a 2010+ movie, as in ML-25M); heavy-tailed user activity with at least 20 ratings each;
every user active over a window of time and never rating a movie before its release year.

Planted taste, so that models have something to learn: movies belong to one of
``clusters`` taste clusters; each user has a main and a second cluster and draws most
movies from them, the rest from a random cluster or from global popularity. Ratings are
higher for movies of the user's own clusters and for movies of higher hidden quality.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec import atomic
from movierec.errors import ParameterError

FULL_USERS = 162_541
FULL_MOVIES = 62_423
FULL_RATINGS = 22_600_000
FIRST_TS, LAST_TS = 789_652_009, 1_574_327_703  # first and last timestamps of ML-25M
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_STARS = tuple(f"{s / 2:.1f}" for s in range(1, 11))  # "0.5" .. "5.0"
_DAY = 86_400
_WORDS = (
    "Midnight", "Silver", "Last", "Broken", "Hidden", "Red", "Winter", "Summer", "Lost",
    "Golden", "Dark", "Wild", "Quiet", "Electric", "Paper", "Iron", "Secret", "Little",
    "Blue", "Burning", "Distant", "Final", "Glass", "Hollow", "Northern", "Crimson",
)  # fmt: skip
_NOUNS = (
    "River", "City", "Heart", "Road", "Garden", "Empire", "Horizon", "Game", "Island",
    "Shadow", "Letter", "Machine", "Kingdom", "Station", "Promise", "Storm", "Journey",
    "Mirror", "Harbor", "Frontier", "Dream", "Voyage", "Detective", "Wedding", "Escape",
)  # fmt: skip


@dataclass(frozen=True)
class SynthSummary:
    path: Path
    ratings: int
    users: int
    movies: int


@dataclass(frozen=True)
class _Movies:
    ids: np.ndarray  # int64, ascending: index i is movie i
    years: np.ndarray  # int64
    cluster: np.ndarray  # int64
    popularity: np.ndarray  # float64, unnormalised
    quality: np.ndarray  # float64, hidden


@dataclass(frozen=True)
class _Users:
    counts: np.ndarray  # int64 ratings wanted
    main: np.ndarray  # int64 cluster
    second: np.ndarray  # int64 cluster
    p_main: np.ndarray  # probability a taste draw picks the main cluster
    p_second: np.ndarray
    bias: np.ndarray  # float64, rating offset
    start: np.ndarray  # int64 first active second
    span: np.ndarray  # int64 active seconds


def synth(
    out_dir: str | Path, scale: float = 1.0, seed: int = 0, *, clusters: int = 24
) -> SynthSummary:
    """Write ``ratings.csv``, ``movies.csv`` and ``links.csv`` into ``out_dir``; see the
    module docstring."""
    if not scale > 0:
        raise ParameterError(f"scale must be positive, got {scale}")
    if clusters < 2:
        raise ParameterError(f"clusters must be at least 2, got {clusters}")
    rng = np.random.default_rng(seed)
    n_users = max(50, round(FULL_USERS * scale))
    n_movies = max(100, round(FULL_MOVIES * scale**0.5))
    n_ratings = max(25 * n_users, round(FULL_RATINGS * scale))
    movies = _make_movies(rng, n_movies, clusters)
    users = _make_users(rng, n_users, n_ratings, clusters, n_movies / clusters)
    user, item = _draw(rng, users, movies)
    timestamps = _timestamps(rng, users, movies, user, item)
    stars = _stars(rng, users, movies, user, item)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ratings = pa.table(
        {
            "userId": pa.array(user + 1, pa.int32()),
            "movieId": pa.array(movies.ids[item], pa.int32()),
            "rating": pc.take(pa.array(_STARS, pa.string()), pa.array(stars)),
            "timestamp": pa.array(timestamps, pa.int64()),
        }
    )
    del user, item, timestamps, stars
    _write_ratings(ratings, out / "ratings.csv")
    n_rows = ratings.num_rows
    del ratings
    _write_movies(rng, movies, clusters, out / "movies.csv")
    _write_links(rng, movies.ids, out / "links.csv")
    return SynthSummary(out, n_rows, n_users, n_movies)


def _make_movies(rng: np.random.Generator, n: int, clusters: int) -> _Movies:
    recent = rng.random(n) < 1 / 3
    years = np.where(recent, rng.integers(2010, 2020, n), rng.integers(1900, 2010, n))
    rank = rng.permutation(n) + 1
    popularity = rank**-1.05 * np.where(recent, 0.25, 1.0)
    ids = np.sort(rng.choice(np.arange(1, 4 * n), size=n, replace=False))
    cluster = rng.permutation(np.arange(n) % clusters)  # no cluster left empty
    return _Movies(ids, years, cluster, popularity, rng.normal(0, 1, n))


def _make_users(
    rng: np.random.Generator, n: int, n_ratings: int, clusters: int, cluster_size: float
) -> _Users:
    activity = rng.lognormal(0.0, 1.1, n)
    counts = 20 + np.rint((n_ratings - 20 * n) * activity / activity.sum()).astype(np.int64)
    # Heavy raters spread wider: a cluster can't supply more than a fraction of its movies.
    breadth = cluster_size / counts
    main = rng.integers(0, clusters, n)
    second = (main + rng.integers(1, clusters, n)) % clusters  # never the main one
    start = rng.integers(FIRST_TS, LAST_TS - 30 * _DAY, n)
    span = np.minimum(rng.exponential(400 * _DAY, n).astype(np.int64) + 3600, LAST_TS - start)
    return _Users(
        counts=counts,
        main=main,
        second=second,
        p_main=np.minimum(rng.uniform(0.45, 0.75, n), 0.3 * breadth),
        p_second=np.minimum(rng.uniform(0.10, 0.25, n), 0.15 * breadth),
        bias=rng.normal(0.0, 0.35, n),
        start=start,
        span=span,
    )


class _MovieSampler:
    """Draws movies for users: from a taste cluster by popularity, or by global popularity."""

    def __init__(self, movies: _Movies, users: _Users) -> None:
        self.users = users
        self.n_movies = len(movies.ids)
        self.clusters = int(movies.cluster.max()) + 1
        # One flat table: cluster c's movies by cumulative popularity span (c, c + 1].
        self.by_cluster = np.argsort(movies.cluster, kind="stable")
        c = movies.cluster[self.by_cluster]
        weight = movies.popularity[self.by_cluster]
        cum = np.cumsum(weight)
        before = np.concatenate(([0.0], cum))[np.searchsorted(c, np.arange(self.clusters))]
        total = np.bincount(c, weights=weight, minlength=self.clusters)
        self.flat = c + (cum - before[c]) / total[c]
        self.global_cum = np.cumsum(movies.popularity) / movies.popularity.sum()

    def draw(self, rng: np.random.Generator, draws: np.ndarray) -> np.ndarray:
        """``draws[u]`` movies for each user u, with replacement, as keys ``u * n + movie``.

        Each draw comes from the user's main cluster, second cluster or a random cluster
        (all by popularity within the cluster), or, one time in ten, global popularity.
        """
        u = self.users
        taste = np.stack([u.p_main, u.p_second, 1.0 - u.p_main - u.p_second], axis=1)
        split = rng.multinomial(draws, np.column_stack([0.9 * taste, np.full(len(draws), 0.1)]))
        cluster = np.concatenate(
            [
                np.repeat(u.main, split[:, 0]),
                np.repeat(u.second, split[:, 1]),
                rng.integers(0, self.clusters, int(split[:, 2].sum())),
            ]
        )
        pos = np.searchsorted(self.flat, cluster + rng.random(cluster.size), side="right")
        del cluster
        pos_global = np.searchsorted(
            self.global_cum, rng.random(int(split[:, 3].sum())), side="right"
        )
        item = np.concatenate([self.by_cluster[np.minimum(pos, self.n_movies - 1)], pos_global])
        del pos, pos_global
        np.minimum(item, self.n_movies - 1, out=item)
        users = np.arange(len(draws), dtype=np.int64)
        user = np.concatenate([np.repeat(users, split[:, j]) for j in range(4)])
        user *= self.n_movies
        user += item
        return user


def _draw(rng: np.random.Generator, users: _Users, movies: _Movies) -> tuple[np.ndarray, ...]:
    """Distinct (user, movie) pairs sorted by user then movie; ``counts[u]`` per user at most.

    Draws with replacement, 60% more than wanted, drops repeats, draws again for the users
    still short (up to five times), then keeps exactly the wanted number of each user's
    movies, evenly spread over the user's distinct movies.
    """
    sampler = _MovieSampler(movies, users)
    n_users, n_movies = len(users.counts), len(movies.ids)
    key = np.empty(0, dtype=np.int64)
    draws = (users.counts * 8) // 5 + 8
    for _ in range(6):
        new = np.sort(sampler.draw(rng, draws))
        # Two sorted runs: the stable sort (timsort) merges them in linear time.
        key = np.sort(np.concatenate((key, new)), kind="stable") if key.size else new
        del new
        key = key[np.append(True, key[1:] != key[:-1])]  # np.unique hashes: far slower
        short = np.maximum(users.counts - np.bincount(key // n_movies, minlength=n_users), 0)
        if short.sum() <= 0.001 * users.counts.sum():
            break
        draws = np.where(short > 0, 3 * short + 8, 0)
    user, item = np.divmod(key, n_movies)
    del key
    distinct = np.bincount(user, minlength=n_users)
    start = np.concatenate(([0], np.cumsum(distinct)[:-1]))
    step = np.minimum(users.counts / np.maximum(distinct, 1), 1.0)[user]
    phase = rng.random(n_users)[user]
    pos = np.arange(len(user)) - start[user]
    keep = np.floor((pos + 1) * step + phase) > np.floor(pos * step + phase)
    return user[keep], item[keep]


def _timestamps(
    rng: np.random.Generator, users: _Users, movies: _Movies, user: np.ndarray, item: np.ndarray
) -> np.ndarray:
    ts = users.start[user] + (rng.random(len(user)) * users.span[user]).astype(np.int64)
    release = ((movies.years - 1970) * 365.25 * _DAY).astype(np.int64)[item]
    late = ts < release
    ts[late] = release[late] + rng.integers(0, 200 * _DAY, int(late.sum()))
    return np.minimum(ts, LAST_TS)


def _stars(
    rng: np.random.Generator, users: _Users, movies: _Movies, user: np.ndarray, item: np.ndarray
) -> np.ndarray:
    """Index into ``_STARS`` (0 -> 0.5 stars ... 9 -> 5.0 stars), as int8."""
    c = movies.cluster[item]
    affinity = np.where(c == users.main[user], 0.8, np.where(c == users.second[user], 0.4, -0.3))
    mean = 3.4 + affinity + 0.35 * movies.quality[item] + users.bias[user]
    half_stars = np.rint(2 * (mean + rng.normal(0.0, 0.8, len(user))))
    return (np.clip(half_stars, 1, 10) - 1).astype(np.int8)


def _write_movies(rng: np.random.Generator, movies: _Movies, clusters: int, path: Path) -> None:
    """``movies.csv`` as MovieLens writes it: quotes only around titles holding commas."""
    n = len(movies.ids)
    words, nouns = rng.integers(0, len(_WORDS), n), rng.integers(0, len(_NOUNS), n)
    article = rng.random(n) < 0.15  # "River 7, The (1999)": a title that needs quotes
    cluster_genres = [
        "|".join(sorted({GENRES[c % len(GENRES)], GENRES[(5 * c + 2) % len(GENRES)]}))
        for c in range(clusters)
    ]
    genres = np.asarray(cluster_genres, dtype=object)[movies.cluster]
    genres[rng.random(n) < 0.02] = "(no genres listed)"
    rows = zip(words, nouns, article, movies.ids, movies.years, genres, strict=True)
    with atomic.replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["movieId", "title", "genres"])
        out.writerows(
            (m, f"{_WORDS[w]} {_NOUNS[k]} {m}{', The' if a else ''} ({y})", g)
            for w, k, a, m, y, g in rows
        )


def _write_links(rng: np.random.Generator, ids: np.ndarray, path: Path) -> None:
    """``links.csv``: distinct IMDb numbers as 7 digits with leading zeros, one TMDB id in a
    hundred left empty (as in MovieLens)."""
    n = len(ids)
    imdb = np.sort(rng.choice(np.arange(1, 10 * n + 10_000), size=n, replace=False))
    tmdb = rng.permutation(np.arange(1, n + 1)) * 7
    tmdb_text = np.where(rng.random(n) < 0.01, "", tmdb.astype(str))
    with atomic.replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write("movieId,imdbId,tmdbId\n")
        f.writelines(f"{m},{i:07d},{t}\n" for m, i, t in zip(ids, imdb, tmdb_text, strict=True))


def _write_ratings(table: pa.Table, path: Path) -> None:
    """``ratings.csv``: a bare header, nothing quoted."""
    with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
        f.write((",".join(table.column_names) + "\n").encode())
        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style="none"))
