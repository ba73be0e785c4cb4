import numpy as np
import pytest

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


@pytest.fixture
def index():
    ids = np.array([m[0] for m in MOVIES])
    catalog = Catalog(
        ids,
        np.array([m[1] for m in MOVIES], dtype=object),
        np.array([m[2] for m in MOVIES], dtype=np.int16),
        np.array([""] * len(MOVIES), dtype=object),
    )
    return TitleIndex(catalog, IdMap(ids), np.array([m[3] for m in MOVIES]))


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
