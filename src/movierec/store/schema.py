"""The store file's layout: its tables and columns, the files SQLite may keep beside it, and
the errors a store that cannot be served raises."""

from __future__ import annotations

from movierec.errors import MovierecError

SIDE_FILES = ("-wal", "-shm", "-journal")
SCHEMA = """
CREATE TABLE recs (
    user_id INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    movie_id INTEGER NOT NULL,
    score REAL NOT NULL,
    PRIMARY KEY (user_id, rank)
) WITHOUT ROWID;
CREATE TABLE movies (id INTEGER PRIMARY KEY, title TEXT NOT NULL, year INTEGER NOT NULL,
                     genres TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
COLUMNS = {
    "recs": ("user_id", "rank", "movie_id", "score"),
    "movies": ("id", "title", "year", "genres"),
    "meta": ("key", "value"),
}


class StoreError(MovierecError):
    """A store file that cannot be served; the message names the file and the problem."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No file at the store's path."""
