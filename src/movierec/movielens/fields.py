"""Checks and messages shared by the ratings and movie readers: header, integer, bad bytes."""

from __future__ import annotations

import re

from movierec.movielens.errors import DataError
from movierec.movielens.files import File

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
