"""Reading a release into a ``Dataset``: ``load`` (read, validate, encode), ``LoadReport``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from movierec.data import Catalog, Dataset, IdMap, Interactions
from movierec.movielens.errors import DataError
from movierec.movielens.files import find_release
from movierec.movielens.links import read_links
from movierec.movielens.movies import read_movies
from movierec.movielens.ratings import LAYOUTS, Ratings, read_ratings

DROP_MISSING_MOVIE = "movie absent from the movie file"
DROP_DUPLICATE = "duplicate (user, movie) pair: older rating"


@dataclass(frozen=True)
class LoadReport:
    """What ``load`` read, and what it dropped and why."""

    source: str
    format: str  # "csv" | "dat-1m" | "dat-10m" | "100k"
    files: tuple[str, ...]
    rows_read: int  # rating lines parsed
    movies_listed: int  # rows of the movie file
    users: int  # kept
    movies: int  # kept: movies with at least one rating
    interactions: int  # kept
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> ratings dropped
    encodings: dict[str, str] = field(default_factory=dict)  # file -> fallback encoding used

    def lines(self) -> list[str]:
        out = [
            f"source: {self.source} ({_FORMAT_NAMES.get(self.format, self.format)})",
            f"read: {', '.join(self.files)}",
            f"{self.rows_read:,} ratings read, {self.movies_listed:,} movies listed",
            f"loaded: {self.interactions:,} ratings, {self.users:,} users, "
            f"{self.movies:,} movies with ratings",
        ]
        out += [f"dropped {n:,} ratings: {reason}" for reason, n in self.dropped.items() if n]
        out += [f"{name} is not UTF-8: read as {enc}" for name, enc in self.encodings.items()]
        return out


_FORMAT_NAMES = {
    "csv": "MovieLens CSV: ratings.csv, movies.csv",
    "dat-1m": "MovieLens 1M: ratings.dat, movies.dat",
    "dat-10m": "MovieLens 10M: ratings.dat, movies.dat",
    "100k": "MovieLens 100K: u.data, u.item",
}


def load(source: str | Path, *, strict: bool = False) -> tuple[Dataset, LoadReport]:
    """Read, validate and encode a MovieLens release; see the package docstring for the policy.

    ``source``: a directory, a ``.zip``, or a release name (``ml-latest-small`` is embedded;
    the others are looked up in ``default_cache_dir()``, where ``fetch`` puts them).
    """
    release = find_release(source)
    movies = read_movies(release)
    layout = LAYOUTS[release.format]
    raw = read_ratings(release.ratings, layout)
    first_line = layout.first_line
    rows_read = len(raw.users)
    dropped: dict[str, int] = {}

    known = _member_mask(raw.items, movies.ids)
    rows = None  # original row of each kept rating, when some were dropped
    if not known.all():
        row = int(np.argmin(known))
        if strict:
            raise DataError(
                release.ratings.display,
                row + first_line,
                f"movie {raw.items[row]} is not in {Path(release.movies.display).name}",
            )
        dropped[DROP_MISSING_MOVIE] = int(rows_read - known.sum())
        rows = np.flatnonzero(known)
        raw = Ratings(raw.users[rows], raw.items[rows], raw.ratings[rows], raw.timestamps[rows])

    user_ids, users = _encode(raw.users)
    item_ids, items = _encode(raw.items)
    key = users.astype(np.int64) * len(item_ids) + items
    drop, first_dup, first_seen = _duplicates(key, raw.timestamps)
    del key
    if drop is not None:
        if strict:
            line = (first_dup if rows is None else int(rows[first_dup])) + first_line
            seen = (first_seen if rows is None else int(rows[first_seen])) + first_line
            raise DataError(
                release.ratings.display,
                line,
                f"user {raw.users[first_dup]} rated movie {raw.items[first_dup]} twice "
                f"(also at line {seen})",
            )
        dropped[DROP_DUPLICATE] = int(drop.sum())
        keep = ~drop
        users, items, ratings, timestamps = (
            users[keep],
            items[keep],
            raw.ratings[keep],
            raw.timestamps[keep],
        )
    else:
        ratings, timestamps = raw.ratings, raw.timestamps
    del raw

    interactions = Interactions(users, items, timestamps, ratings, len(user_ids), len(item_ids))
    rows_in_file = np.argsort(movies.ids)[np.searchsorted(np.sort(movies.ids), item_ids)]
    imdb, tmdb = read_links(release.links).lookup(item_ids) if release.links else (None, None)
    catalog = Catalog(
        movie_ids=item_ids,
        titles=_object_array(movies.titles, rows_in_file),
        years=movies.years[rows_in_file],
        genres=_object_array(movies.genres, rows_in_file),
        imdb_ids=imdb,
        tmdb_ids=tmdb,
    )
    dataset = Dataset(interactions, IdMap(user_ids), IdMap(item_ids), catalog, name=release.name)
    encodings = {}
    if movies.encoding != _native_encoding(release.format):
        encodings[Path(release.movies.display).name] = movies.encoding
    report = LoadReport(
        source=release.display,
        format=release.format,
        files=tuple(
            f.display
            for f in (release.ratings, release.movies, release.genres, release.links)
            if f is not None
        ),
        rows_read=rows_read,
        movies_listed=len(movies.ids),
        users=len(user_ids),
        movies=len(item_ids),
        interactions=len(interactions),
        dropped=dropped,
        encodings=encodings,
    )
    return dataset, report


def _native_encoding(fmt: str) -> str:
    return "latin-1" if fmt == "100k" else "utf-8"


def _object_array(values: list[str], rows: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = [values[i] for i in rows.tolist()]
    return out


def _table_fits(top: int, n: int) -> bool:
    """A lookup table over ids 0..top is cheap beside ``n`` values (linear time, no sort)."""
    return top <= max(4 * n, 1 << 22)


def _encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique ids as int64, int32 index of each value into them)."""
    if values.size > 0 and _table_fits(int(values.max()), values.size):
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        lookup = np.cumsum(present, dtype=np.int32) - 1
        return np.flatnonzero(present).astype(np.int64), lookup[values]
    unique, inverse = np.unique(values, return_inverse=True)
    return unique.astype(np.int64), inverse.astype(np.int32)


def _member_mask(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """values[i] in keys, for non-negative ids."""
    top = max(int(values.max()), int(keys.max()))
    if _table_fits(top, values.size):
        table = np.zeros(top + 1, dtype=bool)
        table[keys] = True
        return table[values]
    return np.isin(values, keys)


def _duplicates(key: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray | None, int, int]:
    """Rows to drop so each key keeps its latest timestamp (the later row on a tie).

    Also the first row repeating an earlier key, and that earlier row. Linear when the
    keys are already sorted (MovieLens files are ordered by user, then movie).
    """
    if np.all(key[1:] >= key[:-1]):
        repeat = np.flatnonzero(key[1:] == key[:-1]) + 1  # rows equal to their predecessor
        if repeat.size == 0:
            return None, -1, -1
        involved = np.union1d(repeat, repeat - 1)
    else:
        order = np.argsort(key, kind="stable")
        same = np.flatnonzero(key[order][1:] == key[order][:-1])
        if same.size == 0:
            return None, -1, -1
        involved = np.union1d(order[same], order[same + 1])
    # involved rows, ascending; sorting by (key, timestamp) stably puts the keeper last.
    by_key = involved[np.lexsort((timestamps[involved], key[involved]))]
    last = np.append(key[by_key][1:] != key[by_key][:-1], True)
    drop = np.zeros(len(key), dtype=bool)
    drop[by_key[~last]] = True
    # First offender in file order: the earliest row whose key occurred before it.
    by_key_row = involved[np.lexsort((involved, key[involved]))]
    group_start = np.append(True, key[by_key_row][1:] != key[by_key_row][:-1])
    starts = np.flatnonzero(group_start)
    group = np.cumsum(group_start) - 1
    later = ~group_start
    k = int(np.argmin(np.where(later, by_key_row, np.iinfo(np.int64).max)))
    return drop, int(by_key_row[k]), int(by_key_row[starts[group[k]]])
