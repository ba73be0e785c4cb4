"""Reading and validating movie files: ``movies.csv``, ``movies.dat`` and ``u.item``.

A title's trailing ``(year)`` is split off (``parse_title``); a control character anywhere
in a movie file, a stray ``"`` in ``movies.csv`` and a movie listed twice are errors.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
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
from movierec.movielens.files import File, Release

# The 19 genre flags of u.item, in order, when u.genre is absent.
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

_MOVIE_COLUMNS = ("movieId", "title", "genres")
_NO_GENRES = frozenset({"(no genres listed)", "unknown", ""})
# What follows a title's last "(": a year, or a series' "2007-" / "1975-1979", then ")".
# Matched from that "(" on, with no two adjacent repeats: linear time on any input.
_YEAR_SUFFIX = re.compile(r"\s*(?P<year>\d{4})\s*(?:[-\u2013]\s*(?:\d{4}\s*)?)?\)")


def parse_title(raw: str) -> tuple[str, int]:
    """``"Heat (1995) "`` -> ``("Heat", 1995)``; year 0 when the title carries none.

    A series' ``(2007-)`` or ``(1975-1979)`` gives its first year.
    """
    text = raw.strip()
    paren = text.rfind("(")
    m = _YEAR_SUFFIX.fullmatch(text, paren + 1) if paren > 0 else None
    title = text[:paren].rstrip() if m is not None else ""
    if not title:
        return text, 0
    return title, int(m.group("year"))


@dataclass(frozen=True)
class Movies:
    ids: np.ndarray  # int64, file order
    titles: list[str]
    years: np.ndarray  # int16
    genres: list[str]
    lines: np.ndarray  # int64 line of each row
    encoding: str


class _MovieRows:
    """Collects movie rows and checks them; one instance per movie file."""

    def __init__(self, f: File, encoding: str) -> None:
        self.f = f
        self.encoding = encoding
        self.ids: list[int] = []
        self.titles: list[str] = []
        self.years: list[int] = []
        self.genres: list[str] = []
        self.lines: list[int] = []
        self.pending_blank: int | None = None

    def blank(self, line: int) -> None:
        if self.pending_blank is None:
            self.pending_blank = line

    def add(self, line: int, movie_id: str, title: str, genres: str, year: int = 0) -> None:
        if self.pending_blank is not None:
            raise DataError(self.f.display, self.pending_blank, "empty line")
        if (problem := integer_problem("movieId", movie_id, 32)) is not None:
            raise DataError(self.f.display, line, problem)
        movie = int(movie_id)
        if movie < 0:
            raise DataError(self.f.display, line, f"negative movieId {movie}")
        name, parsed_year = parse_title(title)
        self.ids.append(movie)
        self.titles.append(name)
        self.years.append(parsed_year or year)
        self.genres.append("" if genres.strip() in _NO_GENRES else genres.strip())
        self.lines.append(line)

    def split_lines(self, text: str, sep: str, n_fields: int) -> Iterator[tuple[int, list[str]]]:
        """(line, fields) of each line of ``text`` but blank ones: ``n_fields`` of them."""
        for line, raw in enumerate(text.split("\n"), start=1):
            raw = raw.removesuffix("\r")
            if not raw.strip():
                self.blank(line)
                continue
            fields = raw.split(sep)
            if len(fields) != n_fields:
                raise self.wrong_fields(line, n_fields, len(fields), raw)
            yield line, fields

    def wrong_fields(self, line: int, expected: int, found: int, text: str) -> DataError:
        hint = " (truncated line?)" if found < expected else ""
        return DataError(
            self.f.display, line, f"expected {expected} fields, found {found}{hint}: {shown(text)}"
        )

    def build(self, first_line: int) -> Movies:
        if not self.ids:
            raise DataError(self.f.display, first_line, "no movies")
        ids = np.asarray(self.ids, dtype=np.int64)
        lines = np.asarray(self.lines, dtype=np.int64)
        check_unique(self.f, ids, lines)
        years = np.asarray(self.years, dtype=np.int16)
        return Movies(ids, self.titles, years, self.genres, lines, self.encoding)


def _read_movies_csv(f: File) -> Movies:
    check_header(f, _MOVIE_COLUMNS)
    text = read_text(f, "utf-8")[0].removeprefix("\ufeff")
    rows = _MovieRows(f, "utf-8")
    reader = csv.reader(io.StringIO(text), strict=True)
    next(reader)
    try:
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if reader.line_num != start:  # no title holds a line end: a stray '"'
                raise DataError(
                    f.display,
                    start,
                    f"a quoted field runs over the line end into line {start + 1} "
                    f"(a stray '\"'?): {shown(_line_of(text, start))}",
                )
            if not row:
                rows.blank(start)
            elif len(row) != 3:
                raise rows.wrong_fields(start, 3, len(row), ",".join(row))
            else:
                rows.add(start, row[0], row[1], row[2])
    except csv.Error as e:
        problem = "a quoted field never closes (a stray '\"'?)" if "end of data" in str(e) else e
        raise DataError(
            f.display, start, f"malformed CSV: {problem}: {shown(_line_of(text, start))}"
        ) from None
    return rows.build(first_line=2)


def _line_of(text: str, line: int) -> str:
    """Line ``line`` (1-based) of ``text``, without its line end."""
    return text.split("\n", line)[line - 1].removesuffix("\r")


def _read_movies_dat(f: File) -> Movies:
    text, encoding = read_text(f, "utf-8", "latin-1")
    rows = _MovieRows(f, encoding)
    for line, fields in rows.split_lines(text, "::", 3):
        rows.add(line, *fields)
    return rows.build(first_line=1)


def _read_genre_names(f: File | None) -> tuple[str, ...]:
    if f is None:
        return GENRES_100K
    names: dict[int, str] = {}
    for line, raw in enumerate(read_text(f, "latin-1")[0].split("\n"), start=1):
        if not raw.strip():
            continue
        name, _, index = raw.strip().rpartition("|")
        if not name or integer_problem("index", index, 32) is not None or int(index) < 0:
            raise DataError(f.display, line, f"expected 'name|index', found {shown(raw.strip())}")
        names[int(index)] = name
    if sorted(names) != list(range(len(names))):
        raise DataError(f.display, None, "genre indices must run 0, 1, 2, ... without gaps")
    return tuple(names[i] for i in range(len(names)))


def _read_movies_100k(f: File, genre_file: File | None) -> Movies:
    names = _read_genre_names(genre_file)
    n_fields = 5 + len(names)
    rows = _MovieRows(f, "latin-1")
    text = read_text(f, "latin-1")[0]
    for line, fields in rows.split_lines(text, "|", n_fields):
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise DataError(f.display, line, f"genre flags must be 0 or 1, found {flags}")
        genres = "|".join(n for n, flag in zip(names, flags, strict=True) if flag == "1")
        genres = "|".join(g for g in genres.split("|") if g not in _NO_GENRES)
        release = re.search(r"(\d{4})\s*$", fields[2])
        rows.add(line, fields[0], fields[1], genres, int(release.group(1)) if release else 0)
    return rows.build(first_line=1)


def read_movies(release: Release) -> Movies:
    """The movie file of ``release``, checked: a ``DataError`` at the first bad line."""
    if release.format == "csv":
        return _read_movies_csv(release.movies)
    if release.format == "100k":
        return _read_movies_100k(release.movies, release.genres)
    return _read_movies_dat(release.movies)
