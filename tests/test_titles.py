import time

import numpy as np
import pytest

from movierec import titles as titles_module
from movierec.data import Catalog, IdMap
from movierec.titles import TitleIndex, normalise, split_year

MOVIES = [  # raw id, title, year, popularity
    (1, "Toy Story", 1995, 50),
    (2, "Inception", 2010, 40),
    (3, "Matrix, The", 1999, 45),
    (4, "Amélie (Fabuleux destin d'Amélie Poulain, Le)", 2001, 20),
    (5, "Hamlet", 1996, 5),
    (6, "Hamlet", 2000, 7),
    (7, "Babylon 5", 0, 1),
    (8, "Toy Story 2", 1999, 30),
    (9, "1917", 2019, 3),
]


def _index(titles, years, popularity, ids=None) -> TitleIndex:
    ids = np.arange(1, len(titles) + 1) if ids is None else np.asarray(ids)
    catalog = Catalog(
        ids,
        np.array(titles, dtype=object),
        np.array(years, dtype=np.int16),
        np.array([""] * len(titles), dtype=object),
    )
    return TitleIndex(catalog, IdMap(ids), np.asarray(popularity))


@pytest.fixture
def index():
    return _index(*zip(*[m[1:] for m in MOVIES], strict=True), ids=[m[0] for m in MOVIES])


def _random_titles(n: int, seed: int = 0) -> list[str]:
    """``n`` titles of 1-4 words from a small vocabulary: many shared prefixes and words."""
    rng = np.random.default_rng(seed)
    words = ["star", "wars", "the", "love", "story", "man", "night", "starship", "a", "go"]
    return [" ".join(rng.choice(words, rng.integers(1, 5))) for _ in range(n)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Matrix, The", "the matrix"),
        ("AMÉLIE", "amelie"),
        ("Toy Story!", "toy story"),
    ],
)
def test_normalise(text, expected):
    assert normalise(text) == expected


def test_split_year():
    assert split_year("Toy Story (1995)") == ("Toy Story", 1995)
    assert split_year("Inception") == ("Inception", 0)
    assert split_year(" Toy Story   (1995)  ") == ("Toy Story", 1995)
    assert split_year("(1999)") == ("", 1999)
    assert split_year("Babylon (1999) 5") == ("Babylon (1999) 5", 0)
    assert split_year("Babylon 5 (19999)") == ("Babylon 5 (19999)", 0)


@pytest.mark.parametrize("text", ["x" + " " * 50_000 + "y", "x" + " " * 50_000 + "(1999)x"])
def test_split_year_is_linear_in_a_long_run_of_spaces(text, index):
    """The old pattern ``^(.*?)\\s*\\((\\d{4})\\)\\s*$`` backtracked quadratically: ~3 s here."""
    started = time.perf_counter()
    assert split_year(text) == (text, 0)
    assert index.find(text).item_idx is None
    assert time.perf_counter() - started < 0.5


def _reference_search(index: TitleIndex, text: str, limit: int) -> list[int]:
    """Type-ahead by its definition: scan every title, most popular first."""
    key = normalise(split_year(text)[0])
    order = np.argsort(-index.popularity, kind="stable").tolist()
    starts = [i for i in order if key and index.keys[i].startswith(key)]
    contains = [i for i in order if key and key in index.keys[i] and i not in starts]
    return (starts + contains)[:limit]


def test_search_is_the_scan_it_replaces():
    titles = _random_titles(400)
    rng = np.random.default_rng(1)
    index = _index(titles, [2000] * len(titles), rng.integers(0, 5, len(titles)))
    queries = ["st", "star", "wars", "ar", "the ", "love story", "go", "a", "zz", "night man"]
    for q in queries:
        for limit in (1, 3, 10, 500):
            assert index.search(q, limit).tolist() == _reference_search(index, q, limit), q


@pytest.mark.parametrize(
    ("query", "item"),
    [
        ("inception", 1),
        ("Toy Story (1995)", 0),
        ("toy story", 0),
        ("The Matrix", 2),
        ("matrix, the (1999)", 2),
        ("amelie (fabuleux destin d'amelie poulain, le)", 3),
        ("Hamlet (2000)", 5),
        ("babylon 5", 6),
        ("8", 7),
        (8, 7),
        ("1917", 8),
    ],
)
def test_exact_matches(index, query, item):
    assert index.find(query).item_idx == item


def test_ambiguous_title_lists_candidates_popular_first(index):
    m = index.find("hamlet")
    assert m.item_idx is None and m.reason == "ambiguous title"
    assert m.candidates == [5, 4]


def test_unknown_title_offers_closest(index):
    m = index.find("Incepton")
    assert m.item_idx is None and m.reason == "unknown title"
    assert m.candidates[0] == 1


@pytest.mark.parametrize("query", ["999", "²", "1" * 30])
def test_unknown_id_or_odd_digits(index, query):
    m = index.find(query)
    assert m.item_idx is None and m.reason


def test_type_ahead_prefers_prefix_then_popularity(index):
    assert index.search("toy", 10).tolist() == [0, 7]
    assert index.search("story", 10).tolist() == [0, 7]
    assert index.search("", 10).tolist() == []


def test_closest_finds_a_misspelt_title_in_a_large_catalogue():
    titles = [*_random_titles(20_000), "The Shawshank Redemption", "Wit"]
    index = _index(titles, [1994] * len(titles), np.ones(len(titles)))
    for query, expected in (("shawshenk redemtion", "The Shawshank Redemption"), ("Wiq", "Wit")):
        m = index.find(query, limit=5)
        assert m.reason == "unknown title"
        assert titles[m.candidates[0]] == expected, query


def test_closest_ranks_a_bounded_number_of_titles(monkeypatch):
    """However large the catalogue and however common the query's words, one fuzzy lookup
    scores at most ``EXHAUSTIVE`` titles with ``fuzz.ratio``."""
    ranked = []
    extract = titles_module.process.extract

    def counting(query, choices, **kw):
        ranked.append(len(choices))
        return extract(query, choices, **kw)

    monkeypatch.setattr(titles_module.process, "extract", counting)
    titles = _random_titles(20_000)
    index = _index(titles, [2000] * len(titles), np.ones(len(titles)))
    for query in ("star wars the love story", "stra", "the man of the night", "x" * 300):
        index.find(query, limit=5)
    assert len(ranked) == 4
    assert max(ranked) <= max(titles_module.EXHAUSTIVE, titles_module.FUZZY_POOL)
