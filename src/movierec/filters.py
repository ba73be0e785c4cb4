"""Request-time filters on what may be recommended: genres, release years, movies to leave out.

``Filters`` is a plain value (the CLI and the HTTP API build one from their parameters);
``Filters.allowed(catalog, items)`` turns it into one boolean mask over the item index,
which ``Recommender`` applies as ``-inf`` before ``top_k`` (one mask per call, however many
users the call scores). Parsing and checking the user's words lives here too, so every
front end reports the same one-line ``ParameterError``: ``parse_years`` ("2000-2019",
"2000-", "-1999", "1995") and ``check_genres`` (case-insensitive, canonical spelling back).
"""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from movierec.data import Catalog, IdMap
from movierec.errors import ParameterError

MAX_EXCLUDE = 500  # movies one request may exclude
NO_GENRES = "(no genres listed)"  # a placeholder in some releases, not a genre

_YEARS = re.compile(r"^\s*(\d{1,4})?\s*(-)?\s*(\d{1,4})?\s*$")


@dataclass(frozen=True)
class Filters:
    """What a request allows; the default allows everything."""

    genres: tuple[str, ...] = ()  # keep movies having at least one of these genres
    exclude_genres: tuple[str, ...] = ()  # drop movies having any of these
    years: tuple[int, int] | None = None  # release years, inclusive; drops movies with none
    exclude: tuple[int, ...] = ()  # raw movie ids never recommended (unknown ids ignored)

    def __post_init__(self) -> None:
        object.__setattr__(self, "genres", tuple(str(g) for g in self.genres))
        object.__setattr__(self, "exclude_genres", tuple(str(g) for g in self.exclude_genres))
        object.__setattr__(self, "exclude", tuple(int(m) for m in self.exclude))
        if len(self.exclude) > MAX_EXCLUDE:
            raise ParameterError(
                f"at most {MAX_EXCLUDE} movies may be excluded, got {len(self.exclude)}"
            )
        if self.years is not None:
            lo, hi = (int(y) for y in self.years)
            if lo > hi:
                raise ParameterError(f"years {lo}-{hi}: the range is reversed")
            object.__setattr__(self, "years", (lo, hi))

    @property
    def active(self) -> bool:
        """Whether these filters drop anything at all."""
        return bool(self.genres or self.exclude_genres or self.exclude or self.years)

    def allowed(self, catalog: Catalog, items: IdMap) -> np.ndarray:
        """(n_items,) bool over the item index (``catalog`` row i is item i, ``items`` maps
        raw ids): True where a movie may be recommended."""
        ok = np.ones(len(catalog), dtype=bool)
        if not self.active:
            return ok
        table = _genre_table(catalog)
        if self.genres:
            ok &= table.any_of(self.genres)
        if self.exclude_genres:
            ok &= ~table.any_of(self.exclude_genres)
        if self.years is not None:
            years = np.asarray(catalog.years)
            ok &= (years != 0) & (years >= self.years[0]) & (years <= self.years[1])
        if self.exclude:
            idx = items.index(np.asarray(self.exclude, dtype=np.int64))
            ok[idx[idx >= 0]] = False
        return ok


def parse_years(text: str) -> tuple[int, int]:
    """``"2000-2019"``, ``"2000-"`` (from 2000), ``"-1999"`` (up to 1999) or ``"1995"`` ->
    an inclusive (first, last) range; ``ParameterError`` on anything else."""
    m = _YEARS.match(str(text))
    if m is None or not (m.group(1) or m.group(3)) or (m.group(2) is None and m.group(3)):
        raise ParameterError(
            f"years {text!r}: expected YEAR, FIRST-LAST, FIRST- or -LAST (e.g. 2000-2019)"
        )
    lo = int(m.group(1)) if m.group(1) else 0
    hi = int(m.group(3)) if m.group(3) else (9999 if m.group(2) else lo)
    if lo > hi:
        raise ParameterError(f"years {text!r}: the range is reversed ({lo} > {hi})")
    return lo, hi


def check_genres(names: tuple[str, ...] | list[str], catalog: Catalog) -> tuple[str, ...]:
    """``names`` matched case-insensitively to the catalogue's genres, in the catalogue's
    spelling (duplicates dropped); ``ParameterError`` naming the first unknown one."""
    known = _genre_table(catalog).names
    by_lower = {g.lower(): g for g in known}
    out: list[str] = []
    for name in names:
        found = by_lower.get(str(name).strip().lower())
        if found is None:
            raise ParameterError(f"unknown genre {name!r}; known: {', '.join(known)}")
        if found not in out:
            out.append(found)
    return tuple(out)


# --------------------------------------------------------------------------- genre masks


class _GenreTable:
    """Every genre of one catalogue and, per genre, its movies as a boolean mask."""

    def __init__(self, catalog: Catalog) -> None:
        split = [str(g).split("|") for g in catalog.genres]
        self.names = sorted({g for gs in split for g in gs if g and g != NO_GENRES})
        column = {g: j for j, g in enumerate(self.names)}
        rows = [i for i, gs in enumerate(split) for g in gs if g in column]
        cols = [column[g] for gs in split for g in gs if g in column]
        self.masks = np.zeros((len(self.names), len(catalog)), dtype=bool)
        self.masks[cols, rows] = True
        self._column = column

    def any_of(self, genres: tuple[str, ...]) -> np.ndarray:
        """Movies having at least one of ``genres`` (names matched exactly; unknown: none)."""
        cols = [self._column[g] for g in genres if g in self._column]
        return self.masks[cols].any(axis=0)


_TABLES: dict[int, tuple[weakref.ref, _GenreTable]] = {}  # id(catalog.genres) -> table
_TABLES_LOCK = threading.Lock()


def _genre_table(catalog: Catalog) -> _GenreTable:
    """The catalogue's genre table, built once per genres array (held while it lives)."""
    key = id(catalog.genres)
    with _TABLES_LOCK:
        held = _TABLES.get(key)
        if held is not None and held[0]() is catalog.genres:
            return held[1]
    table = _GenreTable(catalog)
    with _TABLES_LOCK:
        _TABLES[key] = (weakref.ref(catalog.genres, lambda _: _TABLES.pop(key, None)), table)
    return table
