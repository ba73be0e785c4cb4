"""Finding movies by what a person types: a raw id, an exact title, or part of one.

Titles are compared in a normal form: accents stripped, case folded, punctuation dropped,
and MovieLens's trailing articles moved to the front ("Matrix, The" reads "the matrix").
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np

from movierec.data import Catalog, IdMap

_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
_ARTICLE = re.compile(r"^(.*), (the|a|an|les|la|le|l'|il|el|los|las|die|der|das|den|det)$", re.I)
_NON_WORD = re.compile(r"[^\w]+")


def normalise(title: str) -> str:
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold().strip()
    moved = _ARTICLE.match(text)
    if moved:
        text = f"{moved.group(2)} {moved.group(1)}"
    return _NON_WORD.sub(" ", text).strip()


def split_year(query: str) -> tuple[str, int]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; no year -> year 0."""
    m = _YEAR.match(query)
    return (m.group(1), int(m.group(2))) if m else (query.strip(), 0)


@dataclass
class MovieMatch:
    """``item_idx`` when the query names exactly one movie; otherwise the closest ``candidates``."""

    query: str
    item_idx: int | None = None
    candidates: list[int] = field(default_factory=list)
    reason: str = ""


class TitleIndex:
    """Title lookups over a catalogue; ``popularity`` orders ties and type-ahead results."""

    def __init__(self, catalog: Catalog, items: IdMap, popularity: np.ndarray) -> None:
        self.catalog = catalog
        self.items = items
        self.popularity = np.asarray(popularity)
        self.keys = [normalise(str(t)) for t in catalog.titles]
        self.by_key: dict[str, list[int]] = {}
        for i, key in enumerate(self.keys):
            self.by_key.setdefault(key, []).append(i)
        self._by_popularity = np.argsort(-self.popularity, kind="stable")

    def find(self, query: str | int, limit: int = 10) -> MovieMatch:
        text = str(query).strip()
        by_id = text.isascii() and text.isdigit() and len(text) <= 18
        if by_id and int(self.items.index(int(text))[0]) >= 0:
            return MovieMatch(text, int(self.items.index(int(text))[0]))
        title, year = split_year(text)
        exact = self.by_key.get(normalise(title), [])
        if year:
            exact = [i for i in exact if int(self.catalog.years[i]) == year]
        if len(exact) == 1:
            return MovieMatch(text, exact[0])
        if len(exact) > 1:
            ranked = sorted(exact, key=lambda i: -self.popularity[i])
            return MovieMatch(text, candidates=ranked[:limit], reason="ambiguous title")
        reason = f"no movie has id {text} or that title" if by_id else "unknown title"
        return MovieMatch(text, candidates=self.closest(title, limit), reason=reason)

    def closest(self, text: str, limit: int) -> list[int]:
        key = normalise(text)
        hits = self.search(text, limit)
        names = difflib.get_close_matches(key, list(self.by_key), n=limit, cutoff=0.6)
        seen = set(hits.tolist())
        out = hits.tolist()
        for name in names:
            for i in sorted(self.by_key[name], key=lambda i: -self.popularity[i]):
                if i not in seen:
                    out.append(i)
                    seen.add(i)
        return out[:limit]

    def search(self, text: str, limit: int) -> np.ndarray:
        """Type-ahead: titles starting with ``text`` first, then containing it; popular first."""
        key = normalise(split_year(text)[0])
        if not key:
            return np.empty(0, dtype=np.int32)
        starts, contains = [], []
        for i in self._by_popularity:
            k = self.keys[i]
            if k.startswith(key):
                starts.append(i)
                if len(starts) >= limit:
                    break
            elif key in k and len(contains) < limit:
                contains.append(i)
        return np.asarray((starts + contains)[:limit], dtype=np.int32)
