"""The store file's layout: its tables and columns, the ``because`` column's text form, the
files SQLite may keep beside it, and the errors a store that cannot be served raises."""

from __future__ import annotations

import numpy as np

from movierec.errors import MovierecError

SIDE_FILES = ("-wal", "-shm", "-journal")
VERSION = 2  # meta "version"; 2 added recs.because (1: no such key, no such column)
SCHEMA = """
CREATE TABLE recs (
    user_id INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    movie_id INTEGER NOT NULL,
    score REAL NOT NULL,
    because TEXT NOT NULL,
    PRIMARY KEY (user_id, rank)
) WITHOUT ROWID;
CREATE TABLE movies (id INTEGER PRIMARY KEY, title TEXT NOT NULL, year INTEGER NOT NULL,
                     genres TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
COLUMNS = {
    "recs": ("user_id", "rank", "movie_id", "score", "because"),
    "movies": ("id", "title", "year", "genres"),
    "meta": ("key", "value"),
}
OLD_RECS = ("user_id", "rank", "movie_id", "score")  # version 1's recs columns


def because_text(because: np.ndarray) -> np.ndarray:
    """(..., n) raw movie ids, -1 padding -> (...) object array of "id,id,id" ("": none)."""
    out = np.full(because.shape[:-1], "", dtype=object)
    text = because.astype(str).astype(object)
    for j in range(because.shape[-1]):
        given = because[..., j] >= 0
        sep = np.where(given & (out != ""), ",", "")
        out = np.where(given, out + sep + text[..., j], out)
    return out


def because_ids(text: str) -> tuple[int, ...]:
    """A ``because`` cell ("12,345,6789", or "" for none) -> raw movie ids."""
    return tuple(int(m) for m in text.split(",")) if text else ()


class StoreError(MovierecError):
    """A store file that cannot be served; the message names the file and the problem."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No file at the store's path."""
