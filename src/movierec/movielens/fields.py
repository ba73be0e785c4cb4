"""Checks and messages shared by the readers: header, integer, bad bytes, a checked text file."""

from __future__ import annotations

import re

import numpy as np

from movierec.movielens.errors import DataError
from movierec.movielens.files import File

# Characters no movie or links file may hold: C0 controls but the line end (\n, \r\n), and DEL.
# C1 (U+0080..U+009F) is let through: latin-1 files (ml-100k, ml-1m) may hold cp1252 bytes.
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
_LONE_CR = re.compile(r"\r(?!\n)")
# Integers as the readers accept them; the range is checked on the digits' count first, so
# that no huge string reaches int() (which refuses over 4300 digits).
_INTEGER = re.compile(r"\s*(?P<sign>[+-]?)(?P<digits>[0-9]+)\s*")


def check_header(f: File, expected: tuple[str, ...]) -> None:
    """The first line of a CSV file must name ``expected`` (a UTF-8 BOM is allowed)."""
    raw = f.first_line()
    if not raw.strip():
        problem = "empty file" if not raw else "empty header line"
        raise DataError(f.display, 1, f"{problem}: expected header {','.join(expected)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f.display, 1, undecodable(raw, e, "UTF-8")) from None
    header = text.rstrip("\r\n")
    if tuple(c.strip() for c in header.split(",")) != expected:
        raise DataError(f.display, 1, f"expected header {','.join(expected)}, found {header!r}")


def integer_problem(name: str, value: str, bits: int) -> str | None:
    """Why ``value`` is not a signed ``bits``-bit integer, or None. Any length is safe."""
    if bits >= 32 and len(value) < 10 and value.isascii() and value.isdigit():  # at once
        return None
    m = _INTEGER.fullmatch(value)
    if m is None:
        return f"{name} {shown(value)} is not an integer"
    digits = m.group("digits").lstrip("0") or "0"
    limit = 2 ** (bits - 1)
    if len(digits) > len(str(limit)) or not -limit <= int(m.group("sign") + digits) < limit:
        cut = digits if len(digits) <= 40 else f"{digits[:20]}... ({len(digits)} digits)"
        return f"{name} {m.group('sign').replace('+', '')}{cut} is too large (over {bits} bits)"
    return None


def check_unique(f: File, ids: np.ndarray, lines: np.ndarray) -> None:
    """A movie listed twice is an error at its second line (the earliest such line)."""
    order = np.argsort(ids, kind="stable")
    twice = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if twice.size:
        first, again = order[twice], order[twice + 1]
        k = int(np.argmin(lines[again]))
        raise DataError(
            f.display,
            int(lines[again[k]]),
            f"movieId {ids[again[k]]} listed twice (also at line {lines[first[k]]})",
        )


def shown(value: str, limit: int = 60) -> str:
    """``repr(value)``, cut short when long, for one-line messages."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def undecodable(raw: bytes, e: UnicodeDecodeError, encoding: str) -> str:
    return (
        f"undecodable bytes {raw[e.start : e.end]!r} at column {e.start + 1}: "
        f"the file must be {encoding}"
    )


def _decode(f: File, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line_end = data.find(b"\n", e.start)
        raw = data[line_start : None if line_end < 0 else line_end]
        shifted = UnicodeDecodeError(e.encoding, raw, e.start - line_start, e.end - line_start, "")
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f.display, line, undecodable(raw, shifted, encoding.upper())) from None


def read_text(f: File, *encodings: str) -> tuple[str, str]:
    """The file's text in the first of ``encodings`` that decodes it, and that encoding.

    The last encoding must decode it (else a ``DataError`` at the line). Control characters
    (NUL, ...) anywhere are an error at their line: no field of a movie or links file may hold one.
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
