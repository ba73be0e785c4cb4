"""Reading and validating ratings: ``ratings.csv``, ``ratings.dat`` and ``u.data``.

The fast path parses columns with pyarrow and validates with vectorised numpy; only when
something is wrong is the first offending line located (by bisecting the file with the
same parser) and described.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from movierec.movielens.errors import DataError
from movierec.movielens.fields import check_header, integer_problem, shown, undecodable
from movierec.movielens.files import READ_ERRORS, File

_RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")
_RATING_TYPES = (pa.int32(), pa.int32(), pa.float32(), pa.int64())
# Accepted timestamps: from 1970-01-01 up to a day after the load (clocks disagree a little).
_FUTURE_SLACK_S = 86_400


@dataclass(frozen=True)
class Layout:
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


LAYOUTS = {
    "csv": Layout(",", True, 0.5, 5.0),
    "dat-1m": Layout("::", False, 1.0, 5.0),
    "dat-10m": Layout("::", False, 0.5, 5.0),
    "100k": Layout("\t", False, 1.0, 5.0),
}


@dataclass(frozen=True)
class Ratings:
    users: np.ndarray  # int32 raw ids
    items: np.ndarray  # int32 raw ids
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64


def read_ratings(f: File, layout: Layout) -> Ratings:
    """Every rating of ``f``, checked: a ``DataError`` at the first bad line."""
    if layout.header:
        check_header(f, _RATING_COLUMNS)
    elif not f.first_line():
        raise DataError(f.display, 1, "empty file")
    try:
        with f.arrow_stream() as stream:
            table = layout.read(stream, skip_header=layout.header)
    except pa.ArrowInvalid as e:
        raise _locate_parse_error(f, layout, str(e)) from None
    except (*READ_ERRORS, pa.ArrowException) as e:
        raise f.unreadable(e) from None

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
    return Ratings(users, items, ratings, timestamps)


def _check_timestamps(f: File, timestamps: np.ndarray, first_line: int) -> None:
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


def _check_nulls(f: File, layout: Layout, columns: list[pa.ChunkedArray]) -> int:
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


def _locate_parse_error(f: File, layout: Layout, arrow_message: str) -> DataError:
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


def _describe(raw: bytes, layout: Layout, arrow_message: str, *, last: bool) -> str:
    """Say what is wrong with one ratings line that pyarrow rejected."""
    raw = raw.removesuffix(b"\n").removesuffix(b"\r")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return undecodable(raw, e, "UTF-8")
    fields = text.split(layout.delimiter)
    if len(fields) != len(_RATING_COLUMNS):
        sep = {"\t": "tab", ",": "','", "::": "'::'"}[layout.delimiter]
        hint = " (truncated line?)" if last and len(fields) < len(_RATING_COLUMNS) else ""
        return (
            f"expected {len(_RATING_COLUMNS)} fields ({','.join(_RATING_COLUMNS)}) separated "
            f"by {sep}, found {len(fields)}{hint}: {shown(text)}"
        )
    for name, kind, value in zip(_RATING_COLUMNS, _RATING_TYPES, fields, strict=True):
        if not value.strip():
            return f"missing {name} (empty field)"
        if pa.types.is_integer(kind):
            if (problem := integer_problem(name, value, kind.bit_width)) is not None:
                return problem
        else:
            try:
                float(value)
            except ValueError:
                return f"{name} {value!r} is not a number"
    return f"cannot parse: {_arrow_text(arrow_message)}"
