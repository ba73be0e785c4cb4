"""Reading ``links.csv``: each movie's IMDb and TMDB ids (CSV releases, optional).

Header ``movieId,imdbId,tmdbId``; ``imdbId`` is digits (leading zeros kept: IMDb's ``tt``
plus at least 7 digits), ``tmdbId`` digits or empty; an empty id is unknown (-1). A file
whose first line is already a row of ids is read from line 1 (the embedded ml-latest-small
copy has no header). Like the other readers, a line with another number of fields, an id
that is not a number or over 32 bits, a control character or bad UTF-8, an empty line
before the last row, and a movie listed twice are a ``DataError`` at the line. Rows of
movies absent from the movie file are ignored: links never decide what is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from movierec.movielens.errors import DataError
from movierec.movielens.fields import (
    check_header,
    check_unique,
    integer_problem,
    read_text,
    shown,
)
from movierec.movielens.files import File

_COLUMNS = ("movieId", "imdbId", "tmdbId")
UNKNOWN = -1


@dataclass(frozen=True)
class Links:
    """One row per movie of ``links.csv``, in file order; -1 where an id is empty."""

    ids: np.ndarray  # int64 movieId
    imdb: np.ndarray  # int64
    tmdb: np.ndarray  # int64

    def lookup(self, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(IMDb ids, TMDB ids) of ``movie_ids``; -1 for a movie without a row."""
        q = np.asarray(movie_ids, dtype=np.int64)
        imdb = np.full(q.shape, UNKNOWN, dtype=np.int64)
        tmdb = imdb.copy()
        if self.ids.size:
            order = np.argsort(self.ids)
            pos = np.minimum(np.searchsorted(self.ids[order], q), len(order) - 1)
            row = order[pos]
            found = self.ids[row] == q
            imdb[found], tmdb[found] = self.imdb[row[found]], self.tmdb[row[found]]
        return imdb, tmdb


def _is_header(first: str) -> bool:
    """A first line of ids (three fields, the first a number) is data, not a header."""
    fields = first.removeprefix("\ufeff").rstrip("\r").split(",")
    return not (len(fields) == 3 and fields[0].strip().isdigit())


def _id(f: File, line: int, name: str, value: str, *, required: bool) -> int:
    text = value.strip()
    if not text and not required:
        return UNKNOWN
    if not (text.isascii() and text.isdigit()):
        raise DataError(f.display, line, f"{name} {shown(value)} is not a number")
    if (problem := integer_problem(name, text, 32)) is not None:
        raise DataError(f.display, line, problem)
    return int(text)


def read_links(f: File) -> Links:
    """``links.csv``, checked: a ``DataError`` naming the file and the first bad line."""
    text = read_text(f, "utf-8")[0].removeprefix("\ufeff")
    lines = text.split("\n")
    first = 1
    if _is_header(lines[0]):
        check_header(f, _COLUMNS)
        first = 2
    ids: list[int] = []
    imdb: list[int] = []
    tmdb: list[int] = []
    rows: list[int] = []
    blank: int | None = None
    for line, raw in enumerate(lines[first - 1 :], start=first):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            blank = line if blank is None else blank
            continue
        if blank is not None:
            raise DataError(f.display, blank, "empty line")
        fields = raw.split(",")
        if len(fields) != 3:
            hint = " (truncated line?)" if len(fields) < 3 else ""
            raise DataError(
                f.display, line, f"expected 3 fields, found {len(fields)}{hint}: {shown(raw)}"
            )
        ids.append(_id(f, line, "movieId", fields[0], required=True))
        imdb.append(_id(f, line, "imdbId", fields[1], required=False))
        tmdb.append(_id(f, line, "tmdbId", fields[2], required=False))
        rows.append(line)
    links = Links(*(np.asarray(v, dtype=np.int64) for v in (ids, imdb, tmdb)))
    check_unique(f, links.ids, np.asarray(rows, dtype=np.int64))
    return links
