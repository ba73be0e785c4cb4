"""Read and validate every MovieLens release; fetch releases from GroupLens.

``load(source)`` takes a directory, a ``.zip`` (read in place; one top folder such as
``ml-25m/`` is allowed) or a release name and returns a ``Dataset`` in index space plus a
``LoadReport``. The format is detected from the files present (each may be gzipped):

- CSV: ``ratings.csv`` + ``movies.csv`` (ml-latest, ml-latest-small, ml-20m, ml-25m,
  ml-32m). UTF-8, headers ``userId,movieId,rating,timestamp`` and ``movieId,title,genres``,
  titles quoted where they hold commas. Ratings 0.5..5.
- DAT: ``ratings.dat`` + ``movies.dat`` with ``::`` separators and no header (ml-1m,
  ml-10m). Ratings are UTF-8/ASCII; ``movies.dat`` is read as UTF-8 and falls back to
  latin-1 (ml-1m), which the report records. Ratings 1..5 when ``users.dat`` is present
  (ml-1m), else 0.5..5 (ml-10m).
- 100K: ``u.data`` (tab separated, no header) + ``u.item`` (``|`` separated, latin-1,
  24 fields, 19 genre flags named by ``u.genre`` when present). Ratings 1..5.

Validation policy
-----------------
Structural problems are always errors: a ``DataError`` naming the file, the line and the
problem. They are: a missing or misnamed header, an empty file, a line with too few or
too many fields (a truncated last line), an empty field, a non-numeric or negative id, an
id over 32 bits (either file) or a timestamp over 64 bits, a non-numeric rating or
timestamp, a rating out of range, a timestamp out of range, bytes that are not valid in
the file's encoding, a control character (NUL, ESC, tab, a lone CR, ...) anywhere in a
movie file, a quoted field of ``movies.csv`` that runs over its line end (a stray ``"``:
no title holds a line break), a movie listed twice in the movie file, and a file present
both plain and gzipped (``ratings.csv`` beside ``ratings.csv.gz``: which one is meant is
not guessed).

Timestamps are seconds since 1970-01-01 UTC and must lie between 0 and a day after the
load (the slack absorbs clocks that disagree): a negative or future timestamp is damage,
like a rating out of range, so it is an error rather than a dropped row. MovieLens itself
begins in 1995; earlier non-negative times are accepted for other data in the format.

Two problems are repaired by dropping rows, counted by reason in ``LoadReport.dropped``:
ratings of movies absent from the movie file, and duplicated (user, movie) pairs, of which
the latest by timestamp is kept (the later line on a tie). With ``strict=True`` each of
these becomes a ``DataError`` naming the first offending line instead.

The fast path parses columns with pyarrow and validates with vectorised numpy; only when
something is wrong is the first offending line located (by bisecting the file with the
same parser) and described.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec import atomic
from movierec.data import Catalog, Dataset, IdMap, Interactions
from movierec.errors import MovierecError

# Release name -> the folder its GroupLens zip unpacks into.
RELEASES: dict[str, str] = {
    "ml-latest-small": "ml-latest-small",
    "ml-100k": "ml-100k",
    "ml-1m": "ml-1m",
    "ml-10m": "ml-10M100K",
    "ml-20m": "ml-20m",
    "ml-25m": "ml-25m",
    "ml-32m": "ml-32m",
}
EMBEDDED = "ml-latest-small"
DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"

DROP_MISSING_MOVIE = "movie absent from the movie file"
DROP_DUPLICATE = "duplicate (user, movie) pair: older rating"

# The 19 genre flags of u.item, in order, when u.genre is absent.
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

_RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")
_RATING_TYPES = (pa.int32(), pa.int32(), pa.float32(), pa.int64())
_MOVIE_COLUMNS = ("movieId", "title", "genres")
_NO_GENRES = frozenset({"(no genres listed)", "unknown", ""})
# What follows a title's last "(": a year, or a series' "2007-" / "1975-1979", then ")".
# Matched from that "(" on, with no two adjacent repeats: linear time on any input.
_YEAR_SUFFIX = re.compile(r"\s*(?P<year>\d{4})\s*(?:[-\u2013]\s*(?:\d{4}\s*)?)?\)")
# Characters no movie file may hold: C0 controls but the line end (\n, \r\n), and DEL.
# C1 (U+0080..U+009F) is let through: latin-1 files (ml-100k, ml-1m) may hold cp1252 bytes.
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
_LONE_CR = re.compile(r"\r(?!\n)")
# Integers as the readers accept them; the range is checked on the digits' count first, so
# that no huge string reaches int() (which refuses over 4300 digits).
_INTEGER = re.compile(r"\s*(?P<sign>[+-]?)(?P<digits>[0-9]+)\s*")
# Accepted timestamps: from 1970-01-01 up to a day after the load (clocks disagree a little).
_FUTURE_SLACK_S = 86_400


class DataError(MovierecError, ValueError):
    """A problem in a data file: ``str`` reads ``<file> line <n>: <problem>``."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path} line {line}"
        super().__init__(f"{where}: {message}")


class FetchError(MovierecError, RuntimeError):
    """A release could not be downloaded, verified or unpacked."""


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


def default_cache_dir() -> Path:
    """``$MOVIEREC_DATA``, else ``~/.cache/movierec``."""
    env = os.environ.get("MOVIEREC_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "movierec"


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class _File:
    """One file of a release: on disk or a zip member, maybe gzip-compressed."""

    display: str  # how messages name it
    path: Path  # the file, or the zip archive holding it
    member: str | None = None

    @property
    def gzipped(self) -> bool:
        return (self.member or self.path.name).endswith(".gz")

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        with ExitStack() as stack:
            if self.member is None:
                f: BinaryIO = stack.enter_context(open(self.path, "rb"))
            else:
                archive = stack.enter_context(zipfile.ZipFile(self.path))
                f = stack.enter_context(archive.open(self.member))
            if self.gzipped:
                f = stack.enter_context(gzip.GzipFile(fileobj=f))
            yield f

    @contextmanager
    def arrow_stream(self) -> Iterator[pa.NativeFile | BinaryIO]:
        """A stream for pyarrow: native for files on disk, Python's for zip members."""
        if self.member is None:
            codec = "gzip" if self.gzipped else None
            with pa.input_stream(str(self.path), compression=codec) as s:
                yield s
        else:
            with self.open() as f:
                yield f

    def read_bytes(self) -> bytes:
        try:
            with self.open() as f:
                return f.read()
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(self.display, None, f"cannot read the file: {e}") from None

    def first_line(self) -> bytes:
        try:
            with self.open() as f:
                return f.readline(1 << 16)
        except (OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(self.display, None, f"cannot read the file: {e}") from None


@dataclass(frozen=True)
class _Release:
    name: str
    display: str
    format: str
    ratings: _File
    movies: _File
    genres: _File | None = None  # u.genre


_FORMATS = (  # (format, ratings file, movies file), in order of preference
    ("csv", "ratings.csv", "movies.csv"),
    ("dat", "ratings.dat", "movies.dat"),
    ("100k", "u.data", "u.item"),
)


def _release(source: str | Path) -> _Release:
    text = str(source)
    path = Path(source).expanduser()
    if text in RELEASES and not path.exists():
        return _named_release(text)
    if path.is_dir():
        return _dir_release(path, name=path.name, display=text.rstrip("/") or text)
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise DataError(text, None, "not a directory or a .zip archive")
        return _zip_release(path)
    raise DataError(
        text, None, f"no such file or directory, nor a release name ({', '.join(RELEASES)})"
    )


def _named_release(name: str) -> _Release:
    if name == EMBEDDED:
        root = resources.files("movierec") / "datasets" / EMBEDDED
        if not isinstance(root, Path) or not root.is_dir():
            raise DataError(name, None, "the embedded data set is missing from this install")
        return _dir_release(root, name=name, display=EMBEDDED)
    cache = default_cache_dir()
    if (cache / name).is_dir():
        return _dir_release(cache / name, name=name, display=str(cache / name))
    if (cache / f"{name}.zip").is_file():
        return _zip_release(cache / f"{name}.zip", name=name)
    raise DataError(
        name, None, f"not downloaded (looked in {cache}): run `movierec fetch {name}` first"
    )


def _pick(available: dict[str, list[_File]], display: str, name: str) -> _Release:
    """``available``: the files present by name without ``.gz``; a name may have two."""
    for fmt, ratings, movies in _FORMATS:
        if ratings in available:
            if movies not in available:
                raise DataError(display, None, f"{movies} is missing beside {ratings}")
            if fmt == "dat":
                fmt = "dat-1m" if "users.dat" in available else "dat-10m"
            genres = None
            if fmt == "100k" and "u.genre" in available:
                genres = _only(available, "u.genre", display)
            return _Release(
                name,
                display,
                fmt,
                _only(available, ratings, display),
                _only(available, movies, display),
                genres,
            )
    found = ", ".join(sorted(available)) or "nothing"
    raise DataError(
        display,
        None,
        "no MovieLens files: expected ratings.csv + movies.csv, ratings.dat + movies.dat "
        f"or u.data + u.item; found {found}",
    )


def _only(available: dict[str, list[_File]], base: str, display: str) -> _File:
    """The one file named ``base`` (maybe gzipped): both ``x`` and ``x.gz`` is an error."""
    files = available[base]
    if len(files) > 1:
        a, b = sorted(Path(f.member or f.path).name for f in files)
        raise DataError(display, None, f"both {a} and {b} are present: remove one")
    return files[0]


def _by_base(files: Iterator[tuple[str, _File]]) -> dict[str, list[_File]]:
    out: dict[str, list[_File]] = {}
    for filename, f in files:
        out.setdefault(_base(filename), []).append(f)
    return out


def _dir_release(path: Path, *, name: str, display: str) -> _Release:
    entries = [p for p in path.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    files = _by_base((p.name, _File(f"{display}/{p.name}", p)) for p in entries if p.is_file())
    subdirs = [p for p in entries if p.is_dir()]
    if not any(f[1] in files for f in _FORMATS) and len(subdirs) == 1:
        return _dir_release(subdirs[0], name=name, display=f"{display}/{subdirs[0].name}")
    return _pick(files, display, name)


def _zip_release(path: Path, name: str | None = None) -> _Release:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(str(path), None, f"cannot read the archive: {e}") from None
    members = [m for m in members if not m.startswith("__MACOSX/")]
    tops = {m.split("/", 1)[0] for m in members if "/" in m}
    prefix = f"{tops.pop()}/" if len(tops) == 1 and all("/" in m for m in members) else ""
    files = _by_base(
        (m[len(prefix) :], _File(f"{path}:{m}", path, m))
        for m in members
        if "/" not in m[len(prefix) :]
    )
    default_name = prefix.rstrip("/") or path.stem
    return _pick(files, str(path), name or default_name)


def _base(filename: str) -> str:
    return filename[:-3] if filename.endswith(".gz") else filename


# --------------------------------------------------------------------------- ratings


@dataclass(frozen=True)
class _Layout:
    """How a ratings file is laid out."""

    delimiter: str  # as written in the file
    header: bool
    low: float  # rating range
    high: float

    @property
    def first_line(self) -> int:
        return 2 if self.header else 1

    def arrow_columns(self) -> tuple[list[str], dict[str, pa.DataType]]:
        """``::`` is read as ``:`` with an empty (null-typed) column between fields."""
        if self.delimiter == "::":
            names = [_RATING_COLUMNS[i // 2] if i % 2 == 0 else f"sep{i}" for i in range(7)]
            types = {
                n: _RATING_TYPES[i // 2] if i % 2 == 0 else pa.null() for i, n in enumerate(names)
            }
            return names, types
        return list(_RATING_COLUMNS), dict(zip(_RATING_COLUMNS, _RATING_TYPES, strict=True))

    def read(self, source: pa.NativeFile | BinaryIO | pa.Buffer, *, skip_header: bool) -> pa.Table:
        names, types = self.arrow_columns()
        return pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=int(skip_header)),
            parse_options=pacsv.ParseOptions(
                delimiter=self.delimiter[0], quote_char=False, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=names,
                null_values=[""],
                strings_can_be_null=False,
            ),
        )


_LAYOUTS = {
    "csv": _Layout(",", True, 0.5, 5.0),
    "dat-1m": _Layout("::", False, 1.0, 5.0),
    "dat-10m": _Layout("::", False, 0.5, 5.0),
    "100k": _Layout("\t", False, 1.0, 5.0),
}


@dataclass(frozen=True)
class _Ratings:
    users: np.ndarray  # int32 raw ids
    items: np.ndarray  # int32 raw ids
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64


def _check_header(f: _File, expected: tuple[str, ...]) -> None:
    raw = f.first_line()
    if not raw.strip():
        problem = "empty file" if not raw else "empty header line"
        raise DataError(f.display, 1, f"{problem}: expected header {','.join(expected)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f.display, 1, _undecodable(raw, e, "UTF-8")) from None
    header = text.rstrip("\r\n")
    if tuple(c.strip() for c in header.split(",")) != expected:
        raise DataError(f.display, 1, f"expected header {','.join(expected)}, found {header!r}")


def _read_ratings(f: _File, layout: _Layout) -> _Ratings:
    if layout.header:
        _check_header(f, _RATING_COLUMNS)
    elif not f.first_line():
        raise DataError(f.display, 1, "empty file")
    try:
        with f.arrow_stream() as stream:
            table = layout.read(stream, skip_header=layout.header)
    except pa.ArrowInvalid as e:
        raise _locate_parse_error(f, layout, str(e)) from None
    except (OSError, EOFError, zipfile.BadZipFile, pa.ArrowException) as e:
        raise DataError(f.display, None, f"cannot read the file: {e}") from None

    columns = [table.column(name) for name in _RATING_COLUMNS]
    del table
    n = columns[0].length() if columns else 0
    if any(c.null_count for c in columns):
        n = _check_nulls(f, layout, columns)
        columns = [c.slice(0, n) for c in columns]
    if n == 0:
        line = layout.first_line
        raise DataError(
            f.display, line, "no ratings" + (" after the header" if layout.header else "")
        )
    arrays = []
    for i in range(len(columns)):  # one column at a time: arrow memory goes as numpy's comes
        arrays.append(_to_numpy(columns[i]))
        columns[i] = None
    users, items, ratings, timestamps = arrays
    for name, ids in (("userId", users), ("movieId", items)):
        if ids.min() < 0:
            row = int(np.argmax(ids < 0))
            raise DataError(f.display, row + layout.first_line, f"negative {name} {ids[row]}")
    bad = ~((ratings >= layout.low) & (ratings <= layout.high))
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f.display,
            row + layout.first_line,
            f"rating '{ratings[row]:g}' out of range {layout.low:g}..{layout.high:g}",
        )
    _check_timestamps(f, timestamps, layout.first_line)
    return _Ratings(users, items, ratings, timestamps)


def _check_timestamps(f: _File, timestamps: np.ndarray, first_line: int) -> None:
    """Seconds since 1970-01-01 UTC, up to a day after now: before or later is an error."""
    latest = int(time.time()) + _FUTURE_SLACK_S
    if timestamps.min() >= 0 and timestamps.max() <= latest:  # two passes, no temporaries
        return
    row = int(np.argmax((timestamps < 0) | (timestamps > latest)))
    t = int(timestamps[row])
    if t < 0:
        problem = "is negative (before 1970-01-01)"
    else:
        problem = f"is in the future (after {dt.datetime.fromtimestamp(latest, dt.UTC):%Y-%m-%d})"
    raise DataError(f.display, row + first_line, f"timestamp {t} {problem}")


def _to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    if column.num_chunks == 1:
        return column.chunk(0).to_numpy(zero_copy_only=False)
    return column.to_numpy()


def _check_nulls(f: _File, layout: _Layout, columns: list[pa.ChunkedArray]) -> int:
    """Raise at the first empty field; return the row count without blank lines at the end."""
    masks = [np.asarray(pc.is_null(c)) for c in columns]
    blank = np.logical_and.reduce(masks)
    n = len(blank)
    while n and blank[n - 1]:
        n -= 1
    any_null = np.logical_or.reduce(masks)[:n]
    if any_null.any():
        row = int(np.argmax(any_null))
        line = row + layout.first_line
        if blank[row]:
            raise DataError(f.display, line, "empty line")
        name = next(c for c, m in zip(_RATING_COLUMNS, masks, strict=True) if m[row])
        raise DataError(f.display, line, f"missing {name} (empty field)")
    return n


def _locate_parse_error(f: _File, layout: _Layout, arrow_message: str) -> DataError:
    """Find the first line pyarrow rejects by bisection with the same parser; describe it."""
    data = f.read_bytes()
    body_start = data.find(b"\n") + 1 if layout.header else 0
    body = memoryview(data)[body_start:]
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], newlines + 1))
    if starts[-1] == len(body):
        starts = starts[:-1]
    ends = np.append(starts[1:], len(body))

    def parses(lo: int, hi: int) -> bool:
        try:
            layout.read(pa.py_buffer(body[starts[lo] : ends[hi - 1]]), skip_header=False)
        except pa.ArrowInvalid:
            return False
        return True

    lo, hi = 0, len(starts)
    if hi == 0 or parses(lo, hi):
        return DataError(f.display, None, f"cannot parse: {_arrow_text(arrow_message)}")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if parses(lo, mid):
            lo = mid
        else:
            hi = mid
    line = bytes(body[starts[lo] : ends[lo]])
    last = lo == len(starts) - 1
    return DataError(
        f.display, lo + layout.first_line, _describe(line, layout, arrow_message, last=last)
    )


def _arrow_text(message: str) -> str:
    return message.replace("CSV parse error: ", "").strip()


def _describe(raw: bytes, layout: _Layout, arrow_message: str, *, last: bool) -> str:
    """Say what is wrong with one ratings line that pyarrow rejected."""
    raw = raw.removesuffix(b"\n").removesuffix(b"\r")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return _undecodable(raw, e, "UTF-8")
    fields = text.split(layout.delimiter)
    if len(fields) != len(_RATING_COLUMNS):
        sep = {"\t": "tab", ",": "','", "::": "'::'"}[layout.delimiter]
        hint = " (truncated line?)" if last and len(fields) < len(_RATING_COLUMNS) else ""
        return (
            f"expected {len(_RATING_COLUMNS)} fields ({','.join(_RATING_COLUMNS)}) separated "
            f"by {sep}, found {len(fields)}{hint}: {_shown(text)}"
        )
    for name, kind, value in zip(_RATING_COLUMNS, _RATING_TYPES, fields, strict=True):
        if not value.strip():
            return f"missing {name} (empty field)"
        if pa.types.is_integer(kind):
            if (problem := _integer_problem(name, value, kind.bit_width)) is not None:
                return problem
        else:
            try:
                float(value)
            except ValueError:
                return f"{name} {value!r} is not a number"
    return f"cannot parse: {_arrow_text(arrow_message)}"


def _integer_problem(name: str, value: str, bits: int) -> str | None:
    """Why ``value`` is not a signed ``bits``-bit integer, or None. Any length is safe."""
    if bits >= 32 and len(value) < 10 and value.isascii() and value.isdigit():  # at once
        return None
    m = _INTEGER.fullmatch(value)
    if m is None:
        return f"{name} {_shown(value)} is not an integer"
    digits = m.group("digits").lstrip("0") or "0"
    limit = 2 ** (bits - 1)
    if len(digits) > len(str(limit)) or not -limit <= int(m.group("sign") + digits) < limit:
        shown = digits if len(digits) <= 40 else f"{digits[:20]}... ({len(digits)} digits)"
        return f"{name} {m.group('sign').replace('+', '')}{shown} is too large (over {bits} bits)"
    return None


def _shown(value: str, limit: int = 60) -> str:
    """``repr(value)``, cut short when long, for one-line messages."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def _undecodable(raw: bytes, e: UnicodeDecodeError, encoding: str) -> str:
    return (
        f"undecodable bytes {raw[e.start : e.end]!r} at column {e.start + 1}: "
        f"the file must be {encoding}"
    )


# --------------------------------------------------------------------------- movies


@dataclass(frozen=True)
class _Movies:
    ids: np.ndarray  # int64, file order
    titles: list[str]
    years: np.ndarray  # int16
    genres: list[str]
    lines: np.ndarray  # int64 line of each row
    encoding: str


def _decode(f: _File, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line_end = data.find(b"\n", e.start)
        raw = data[line_start : None if line_end < 0 else line_end]
        shifted = UnicodeDecodeError(e.encoding, raw, e.start - line_start, e.end - line_start, "")
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f.display, line, _undecodable(raw, shifted, encoding.upper())) from None


def _read_text(f: _File, *encodings: str) -> tuple[str, str]:
    """The file's text in the first of ``encodings`` that decodes it, and that encoding.

    The last encoding must decode it (else a ``DataError`` at the line). Control characters
    (NUL, ...) anywhere are an error at their line: no field of a movie file may hold one.
    """
    data = f.read_bytes()
    for encoding in encodings[:-1]:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        encoding = encodings[-1]
        text = _decode(f, data, encoding)
    if (at := _first_control(text)) >= 0:
        line_start = text.rfind("\n", 0, at) + 1
        raise DataError(
            f.display,
            text.count("\n", 0, at) + 1,
            f"control character {text[at]!r} at column {at - line_start + 1}: "
            "NUL bytes and other control characters are not allowed",
        )
    return text, encoding


def _first_control(text: str) -> int:
    """Where the first control character (a CR not before LF included) is, or -1."""
    found = [m.start() for m in (_CONTROL.search(text),) if m is not None]
    if "\r" in text and text.count("\r") != text.count("\r\n"):  # the regex is slower
        found += [m.start() for m in (_LONE_CR.search(text),) if m is not None]
    return min(found, default=-1)


class _MovieRows:
    """Collects movie rows and checks them; one instance per movie file."""

    def __init__(self, f: _File, encoding: str) -> None:
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
        if (problem := _integer_problem("movieId", movie_id, 32)) is not None:
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

    def wrong_fields(self, line: int, expected: int, found: int, text: str) -> DataError:
        hint = " (truncated line?)" if found < expected else ""
        return DataError(
            self.f.display, line, f"expected {expected} fields, found {found}{hint}: {_shown(text)}"
        )

    def build(self, first_line: int) -> _Movies:
        if not self.ids:
            raise DataError(self.f.display, first_line, "no movies")
        ids = np.asarray(self.ids, dtype=np.int64)
        lines = np.asarray(self.lines, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        twice = np.flatnonzero(ids[order][1:] == ids[order][:-1])
        if twice.size:
            first, again = order[twice], order[twice + 1]
            k = int(np.argmin(lines[again]))
            raise DataError(
                self.f.display,
                int(lines[again[k]]),
                f"movieId {ids[again[k]]} listed twice (also at line {lines[first[k]]})",
            )
        years = np.asarray(self.years, dtype=np.int16)
        return _Movies(ids, self.titles, years, self.genres, lines, self.encoding)


def _read_movies_csv(f: _File) -> _Movies:
    _check_header(f, _MOVIE_COLUMNS)
    text = _read_text(f, "utf-8")[0].removeprefix("\ufeff")
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
                    f"(a stray '\"'?): {_shown(_line_of(text, start))}",
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
            f.display, start, f"malformed CSV: {problem}: {_shown(_line_of(text, start))}"
        ) from None
    return rows.build(first_line=2)


def _line_of(text: str, line: int) -> str:
    """Line ``line`` (1-based) of ``text``, without its line end."""
    return text.split("\n", line)[line - 1].removesuffix("\r")


def _read_movies_dat(f: _File) -> _Movies:
    text, encoding = _read_text(f, "utf-8", "latin-1")
    rows = _MovieRows(f, encoding)
    for line, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            rows.blank(line)
            continue
        fields = raw.split("::")
        if len(fields) != 3:
            raise rows.wrong_fields(line, 3, len(fields), raw)
        rows.add(line, *fields)
    return rows.build(first_line=1)


def _read_genre_names(f: _File | None) -> tuple[str, ...]:
    if f is None:
        return GENRES_100K
    names: dict[int, str] = {}
    for line, raw in enumerate(_read_text(f, "latin-1")[0].split("\n"), start=1):
        if not raw.strip():
            continue
        name, _, index = raw.strip().rpartition("|")
        if not name or _integer_problem("index", index, 32) is not None or int(index) < 0:
            raise DataError(f.display, line, f"expected 'name|index', found {_shown(raw.strip())}")
        names[int(index)] = name
    if sorted(names) != list(range(len(names))):
        raise DataError(f.display, None, "genre indices must run 0, 1, 2, ... without gaps")
    return tuple(names[i] for i in range(len(names)))


def _read_movies_100k(f: _File, genre_file: _File | None) -> _Movies:
    names = _read_genre_names(genre_file)
    n_fields = 5 + len(names)
    rows = _MovieRows(f, "latin-1")
    text = _read_text(f, "latin-1")[0]
    for line, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            rows.blank(line)
            continue
        fields = raw.split("|")
        if len(fields) != n_fields:
            raise rows.wrong_fields(line, n_fields, len(fields), raw)
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise DataError(f.display, line, f"genre flags must be 0 or 1, found {flags}")
        genres = "|".join(n for n, flag in zip(names, flags, strict=True) if flag == "1")
        genres = "|".join(g for g in genres.split("|") if g not in _NO_GENRES)
        release = re.search(r"(\d{4})\s*$", fields[2])
        rows.add(line, fields[0], fields[1], genres, int(release.group(1)) if release else 0)
    return rows.build(first_line=1)


def _read_movies(release: _Release) -> _Movies:
    if release.format == "csv":
        return _read_movies_csv(release.movies)
    if release.format == "100k":
        return _read_movies_100k(release.movies, release.genres)
    return _read_movies_dat(release.movies)


# --------------------------------------------------------------------------- load


def load(source: str | Path, *, strict: bool = False) -> tuple[Dataset, LoadReport]:
    """Read, validate and encode a MovieLens release; see the module docstring for the policy.

    ``source``: a directory, a ``.zip``, or a release name (``ml-latest-small`` is embedded;
    the others are looked up in ``default_cache_dir()``, where ``fetch`` puts them).
    """
    release = _release(source)
    movies = _read_movies(release)
    raw = _read_ratings(release.ratings, _LAYOUTS[release.format])
    first_line = _LAYOUTS[release.format].first_line
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
        raw = _Ratings(raw.users[rows], raw.items[rows], raw.ratings[rows], raw.timestamps[rows])

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
    catalog = Catalog(
        movie_ids=item_ids,
        titles=_object_array(movies.titles, rows_in_file),
        years=movies.years[rows_in_file],
        genres=_object_array(movies.genres, rows_in_file),
    )
    dataset = Dataset(interactions, IdMap(user_ids), IdMap(item_ids), catalog, name=release.name)
    encodings = {}
    if movies.encoding != _native_encoding(release.format):
        encodings[Path(release.movies.display).name] = movies.encoding
    report = LoadReport(
        source=release.display,
        format=release.format,
        files=(release.ratings.display, release.movies.display)
        + ((release.genres.display,) if release.genres else ()),
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


def _compact(values: np.ndarray) -> bool:
    """Non-negative ids small enough for a lookup table (linear time, no sort)."""
    return values.size > 0 and int(values.max()) <= max(4 * values.size, 1 << 22)


def _encode(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique ids as int64, int32 index of each value into them)."""
    if _compact(values):
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[values] = True
        lookup = np.cumsum(present, dtype=np.int32) - 1
        return np.flatnonzero(present).astype(np.int64), lookup[values]
    unique, inverse = np.unique(values, return_inverse=True)
    return unique.astype(np.int64), inverse.astype(np.int32)


def _member_mask(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """values[i] in keys, for non-negative ids."""
    top = max(int(values.max()), int(keys.max()))
    if top <= max(4 * values.size, 1 << 22):
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


# --------------------------------------------------------------------------- fetch


def fetch(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    checksum: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Download, verify and unpack release ``name`` into ``cache_dir/name``; return that path.

    The checksum is ``checksum`` (``md5:HEX``, ``sha256:HEX`` or bare hex) when given, else the
    ``.md5`` file GroupLens publishes beside each zip. ``base_url`` defaults to
    ``$MOVIEREC_BASE_URL``, then GroupLens. Nothing is left behind on failure; the unpacked
    folder appears atomically. An existing copy is returned as is unless ``force``.
    """
    if name not in RELEASES:
        raise FetchError(f"unknown release {name!r}; known: {', '.join(RELEASES)}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / name
    if target.is_dir() and not force:
        return target
    base = (base_url or os.environ.get("MOVIEREC_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{name}.zip"
    algorithm, expected = _parse_checksum(checksum) if checksum else ("md5", _published_md5(url))
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as cleanup:
        atomic.remove_stale(target)  # downloads and unpacked folders of killed fetches
        part = atomic.beside(target)
        cleanup.callback(part.unlink, missing_ok=True)
        digest = _download(url, part, algorithm, progress)
        if digest != expected:
            raise FetchError(
                f"checksum mismatch for {url}: expected {algorithm} {expected}, got {digest}; "
                "the download was discarded"
            )
        unpacked = atomic.beside(target)
        unpacked.mkdir()
        cleanup.callback(shutil.rmtree, unpacked, ignore_errors=True)
        try:
            with zipfile.ZipFile(part) as archive:
                archive.extractall(unpacked)
        except (OSError, zipfile.BadZipFile) as e:
            raise FetchError(f"cannot unpack {url}: {e}") from None
        entries = [p for p in unpacked.iterdir() if p.name != "__MACOSX"]
        content = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
        _move_into_place(content, target, unpacked)
    return target


def _move_into_place(content: Path, target: Path, scratch: Path) -> None:
    if target.exists():
        old = scratch / ".replaced"
        os.rename(target, old)  # directories: renamed, never replaced
    try:
        os.rename(content, target)
    except OSError as e:  # another process finished first
        if not target.is_dir():
            raise FetchError(f"cannot move the release into {target}: {e}") from None


def _parse_checksum(text: str) -> tuple[str, str]:
    algorithm, _, value = text.strip().rpartition(":")
    value = value.lower()
    if not algorithm:
        algorithm = {32: "md5", 64: "sha256"}.get(len(value), "")
    if algorithm not in ("md5", "sha256") or not re.fullmatch(r"[0-9a-f]+", value):
        raise FetchError(f"checksum {text!r} is not md5:HEX, sha256:HEX or a bare md5/sha256 hex")
    if len(value) != {"md5": 32, "sha256": 64}[algorithm]:
        raise FetchError(f"checksum {text!r}: wrong length for {algorithm}")
    return algorithm, value


def _urlopen(url: str) -> IO[bytes]:
    try:
        return urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as e:
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise FetchError(
            f"cannot reach {url} ({reason}); are you offline? You can download the zip "
            "yourself and pass its path to --data"
        ) from None


def _published_md5(url: str) -> str:
    try:
        with _urlopen(url + ".md5") as response:
            text = response.read(4096).decode("ascii", "replace")
    except FetchError as e:
        if "HTTP 404" in str(e):
            raise FetchError(
                f"no checksum published at {url}.md5: pass --checksum md5:HEX or sha256:HEX"
            ) from None
        raise
    m = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if m is None:
        raise FetchError(f"{url}.md5 holds no md5 checksum")
    return m.group(0).lower()


def _download(url: str, dest: Path, algorithm: str, progress: bool) -> str:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    hasher = hashlib.new(algorithm)
    with _urlopen(url) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        received = 0
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task(url.rsplit("/", 1)[-1], total=total)
            try:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    hasher.update(chunk)
                    received += len(chunk)
                    bar.update(task, advance=len(chunk))
            except (OSError, TimeoutError) as e:
                raise FetchError(f"download of {url} interrupted: {e}") from None
    if total is not None and received != total:
        raise FetchError(f"download of {url} truncated: {received:,} of {total:,} bytes")
    return hasher.hexdigest()
