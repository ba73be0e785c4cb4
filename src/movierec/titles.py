"""Finding movies by what a person types: a raw id, an exact title, or part of one.

Titles are compared in a normal form: accents stripped, case folded, punctuation dropped,
and MovieLens's trailing articles moved to the front ("Matrix, The" reads "the matrix").

Every lookup does bounded work, whatever the query (a request may hold 100 of them):

- exact: one dict lookup;
- type-ahead (``search``): titles starting with the query are a range of the titles in
  sorted order (two bisections); titles containing it come from ``str.find`` over all
  titles joined in popularity order, at most one pass over that text;
- closest (``closest``): rapidfuzz's ``fuzz.ratio`` ranks at most ``EXHAUSTIVE`` titles: all
  those of a length that could pass the cutoff where they are that few (short queries),
  else the ``FUZZY_POOL`` titles whose trigrams are most like the query's (Jaccard, from a
  trigram index, reading at most ``POSTINGS_BUDGET`` postings, the query's rarest first).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process

from movierec.data import Catalog, IdMap

_YEAR = re.compile(r"\((\d{4})\)")
_ARTICLE = re.compile(r"^(.*), (the|a|an|les|la|le|l'|il|el|los|las|die|der|das|den|det)$", re.I)
_NON_WORD = re.compile(r"[^\w]+")

FUZZY_CUTOFF = 60.0  # fuzz.ratio (0..100) a close match needs: difflib's 0.6
FUZZY_POOL = 100  # titles with the most shared trigrams that fuzz.ratio ranks
EXHAUSTIVE = 4096  # fewer titles than this of a length that could pass: rank them all
POSTINGS_BUDGET = 1 << 13  # trigram postings one fuzzy lookup reads (at least one list)
_SEP = "\n"  # between titles in joined text; no normalised title holds one
_LAST = "\U0010ffff"  # sorts after every character a normalised title holds


def normalise(title: str) -> str:
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold().strip()
    moved = _ARTICLE.match(text)
    if moved:
        text = f"{moved.group(2)} {moved.group(1)}"
    return _NON_WORD.sub(" ", text).strip()


def split_year(query: str) -> tuple[str, int]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; no year -> year 0. Linear time:
    the year is read off the stripped end, never found by backtracking."""
    text = query.strip()
    m = _YEAR.fullmatch(text, len(text) - 6) if len(text) >= 6 else None
    return (text[:-6].rstrip(), int(m.group(1))) if m else (text, 0)


@dataclass
class MovieMatch:
    """``item_idx`` when the query names exactly one movie; otherwise the closest ``candidates``."""

    query: str
    item_idx: int | None = None
    candidates: list[int] = field(default_factory=list)
    reason: str = ""


def _trigrams(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(text number, trigram code) for each distinct trigram of each `` text `` (padded
    with a space each side), sorted by code, then text number."""
    padded = _SEP.join(f" {t} " for t in texts)
    cp = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    sizes = np.array([len(t) + 3 for t in texts], dtype=np.int64)  # " t " and a separator
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), sizes)[: cp.size]
    if cp.size < 3:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b, c = cp[:-2], cp[1:-1], cp[2:]
    inside = (a != ord(_SEP)) & (b != ord(_SEP)) & (c != ord(_SEP))
    codes = ((a << 42) | (b << 21) | c)[inside]  # code points are below 2**21
    owner = owner[: cp.size - 2][inside]
    order = np.lexsort((owner, codes))
    codes, owner = codes[order], owner[order]
    keep = np.ones(codes.size, dtype=bool)
    keep[1:] = (codes[1:] != codes[:-1]) | (owner[1:] != owner[:-1])
    return owner[keep], codes[keep]


class _Trigrams:
    """Inverted index: trigram -> the texts holding it (ascending text number)."""

    def __init__(self, texts: list[str]) -> None:
        owner, codes = _trigrams(texts)
        self.n = len(texts)
        self.grams, starts = np.unique(codes, return_index=True)
        self.indptr = np.append(starts, codes.size)
        self.postings = owner.astype(np.int32)
        self.sizes = np.bincount(owner, minlength=self.n)  # distinct trigrams per text

    def most_shared(self, text: str, pool: int) -> np.ndarray:
        """Up to ``pool`` texts most like ``text`` by trigrams (Jaccard: shared / either's;
        ties: lowest number first), shared ones counted over ``text``'s rarest trigrams
        within ``POSTINGS_BUDGET``."""
        _, codes = _trigrams([text])
        j = np.searchsorted(self.grams, codes)
        j = j[(j < self.grams.size) & (self.grams[np.minimum(j, self.grams.size - 1)] == codes)]
        if j.size == 0:
            return np.zeros(0, dtype=np.int64)
        sizes = self.indptr[j + 1] - self.indptr[j]
        order = np.argsort(sizes, kind="stable")
        affordable = int(np.searchsorted(np.cumsum(sizes[order]), POSTINGS_BUDGET, "right"))
        used = j[order[: max(1, affordable)]]
        hits = np.sort(
            np.concatenate([self.postings[self.indptr[g] : self.indptr[g + 1]] for g in used])
        )
        first = np.flatnonzero(np.diff(hits, prepend=-1))
        found, shared = hits[first], np.diff(np.append(first, hits.size))
        if found.size <= pool:
            return found
        jaccard = shared / (codes.size + self.sizes[found] - shared)
        cut = np.partition(jaccard, found.size - pool)[found.size - pool]  # the pool-th best
        above = found[jaccard > cut]
        return np.sort(np.concatenate([above, found[jaccard == cut][: pool - above.size]]))


class TitleIndex:
    """Title lookups over a catalogue; ``popularity`` orders ties and type-ahead results.
    Read-only once built: safe to share between threads."""

    def __init__(self, catalog: Catalog, items: IdMap, popularity: np.ndarray) -> None:
        self.catalog = catalog
        self.items = items
        self.popularity = np.asarray(popularity)
        self.keys = [normalise(str(t)) for t in catalog.titles]
        self._by_popularity = np.argsort(-self.popularity, kind="stable")
        self.by_key: dict[str, list[int]] = {}  # each list popular first
        for i in self._by_popularity.tolist():
            self.by_key.setdefault(self.keys[i], []).append(i)
        # type-ahead: the keys in popularity order, joined; and sorted, with popularity ranks
        ranked = [self.keys[i] for i in self._by_popularity.tolist()]
        self._text = _SEP.join(ranked)
        self._line_starts = np.cumsum([0] + [len(k) + 1 for k in ranked[:-1]])
        lexical = sorted(range(len(ranked)), key=ranked.__getitem__)
        self._sorted = [ranked[r] for r in lexical]
        self._sorted_rank = np.asarray(lexical, dtype=np.int64)
        # closest: distinct keys, most popular first (dicts keep insertion order)
        self._names = list(self.by_key)
        self._trigrams = _Trigrams(self._names)
        lengths = np.array([len(n) for n in self._names], dtype=np.int64)
        self._by_length = np.argsort(lengths, kind="stable")
        self._lengths = lengths[self._by_length]

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
            return MovieMatch(text, candidates=exact[:limit], reason="ambiguous title")
        reason = f"no movie has id {text} or that title" if by_id else "unknown title"
        return MovieMatch(text, candidates=self.closest(title, limit), reason=reason)

    def closest(self, text: str, limit: int) -> list[int]:
        """Type-ahead hits, then titles spelled like ``text``; popular first among equals."""
        out = self.search(text, limit).tolist()
        seen = set(out)
        for name in self._close_names(normalise(text), limit):
            for i in self.by_key[name]:
                if i not in seen:
                    out.append(i)
                    seen.add(i)
        return out[:limit]

    def _close_names(self, key: str, limit: int) -> list[str]:
        """Up to ``limit`` distinct keys with ``fuzz.ratio`` >= ``FUZZY_CUTOFF``, best first."""
        if not key:
            return []
        pool = self._fuzzy_pool(key)
        choices = [self._names[j] for j in pool.tolist()]
        got = process.extract(
            key, choices, scorer=fuzz.ratio, limit=None, score_cutoff=FUZZY_CUTOFF
        )
        got.sort(key=lambda hit: (-hit[1], hit[2]))  # ties: the more popular title
        return [name for name, _, _ in got[:limit]]

    def _fuzzy_pool(self, key: str) -> np.ndarray:
        """Distinct-key numbers worth a ``fuzz.ratio``: every key of a length that could reach
        the cutoff where there are at most ``EXHAUSTIVE`` (short queries, which share few
        trigrams with their matches), else the trigram index's ``FUZZY_POOL``."""
        c = FUZZY_CUTOFF / 100  # ratio = 2 * common / (len_a + len_b) <= 2 * min / sum
        lo = np.searchsorted(self._lengths, int(len(key) * c / (2 - c)), "left")
        hi = np.searchsorted(self._lengths, -(-len(key) * (2 - c) // c), "right")
        if hi - lo <= EXHAUSTIVE:
            return np.sort(self._by_length[lo:hi])
        return self._trigrams.most_shared(key, FUZZY_POOL)

    def search(self, text: str, limit: int) -> np.ndarray:
        """Type-ahead: titles starting with ``text`` first, then containing it; popular first."""
        key = normalise(split_year(text)[0])
        if not key or limit < 1:
            return np.empty(0, dtype=np.int32)
        lo = bisect.bisect_left(self._sorted, key)
        hi = bisect.bisect_left(self._sorted, key + _LAST, lo)
        ranks = self._sorted_rank[lo:hi]  # popularity ranks of the titles starting with it
        if ranks.size > limit:
            ranks = np.partition(ranks, limit - 1)[:limit]
        starts = np.sort(ranks).tolist()
        contains: list[int] = []
        pos = 0
        while len(starts) + len(contains) < limit:
            pos = self._text.find(key, pos)
            if pos < 0:
                break
            line = int(np.searchsorted(self._line_starts, pos, "right")) - 1
            if pos != self._line_starts[line]:  # a title that starts with it is in starts
                contains.append(line)
            nxt = line + 1
            if nxt >= len(self._line_starts):
                break
            pos = int(self._line_starts[nxt])
        return self._by_popularity[starts + contains].astype(np.int32)
