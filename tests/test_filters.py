"""Request-time filters: the mask over the item index, the years grammar, genre names."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.data import Catalog, IdMap
from movierec.errors import ParameterError
from movierec.filters import MAX_EXCLUDE, Filters, check_genres, parse_years

CATALOG = Catalog(
    np.array([1, 2, 10, 50, 60, 80], dtype=np.int64),
    np.array(["Toy Story", "Jumanji", "Heat", "Inception", "Interstellar", "X"], dtype=object),
    np.array([1995, 1995, 1995, 2010, 2014, 0], dtype=np.int16),
    np.array(
        [
            "Adventure|Animation|Children",
            "Adventure|Children|Fantasy",
            "Action|Crime",
            "Action|Sci-Fi|Thriller",
            "Drama|Sci-Fi",
            "(no genres listed)",
        ],
        dtype=object,
    ),
)
ITEMS = IdMap(CATALOG.movie_ids)


def kept(filters: Filters) -> list[int]:
    return CATALOG.movie_ids[filters.allowed(CATALOG, ITEMS)].tolist()


def test_no_filters_allow_everything() -> None:
    assert not Filters().active
    assert kept(Filters()) == [1, 2, 10, 50, 60, 80]


@pytest.mark.parametrize(
    ("filters", "movies"),
    [
        (Filters(genres=("Sci-Fi",)), [50, 60]),
        (Filters(genres=("Children", "Crime")), [1, 2, 10]),  # any of them
        (Filters(exclude_genres=("Action", "Fantasy")), [1, 60, 80]),  # none of them
        (Filters(genres=("Sci-Fi",), exclude_genres=("Drama",)), [50]),
        (Filters(years=(1995, 2010)), [1, 2, 10, 50]),  # inclusive; no year: dropped
        (Filters(years=(0, 9999)), [1, 2, 10, 50, 60]),
        (Filters(exclude=(2, 60, 12345)), [1, 10, 50, 80]),  # unknown ids ignored
        (Filters(genres=("Adventure",), years=(1995, 1995), exclude=(1,)), [2]),
        (Filters(genres=("Nothing Like It",)), []),
    ],
)
def test_each_filter_and_their_combination(filters: Filters, movies: list[int]) -> None:
    assert filters.active
    assert kept(filters) == movies


def test_filters_are_plain_values() -> None:
    f = Filters(genres=["Drama"], exclude=[np.int64(5)], years=[1990, 2000])  # type: ignore[arg-type]
    assert f == Filters(genres=("Drama",), exclude=(5,), years=(1990, 2000))
    assert hash(f) == hash(Filters(genres=("Drama",), exclude=(5,), years=(1990, 2000)))
    with pytest.raises(ParameterError, match="reversed"):
        Filters(years=(2000, 1990))
    with pytest.raises(ParameterError, match=f"at most {MAX_EXCLUDE}"):
        Filters(exclude=tuple(range(MAX_EXCLUDE + 1)))


def test_the_genre_table_is_built_once_per_catalogue() -> None:
    from movierec import filters as module

    first = module._genre_table(CATALOG)
    assert module._genre_table(CATALOG) is first
    other = Catalog(CATALOG.movie_ids, CATALOG.titles, CATALOG.years, CATALOG.genres.copy())
    assert module._genre_table(other) is not first


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("2000-2019", (2000, 2019)),
        (" 2000 - 2019 ", (2000, 2019)),
        ("2000-", (2000, 9999)),
        ("-1999", (0, 1999)),
        ("1995", (1995, 1995)),
    ],
)
def test_parse_years(text: str, years: tuple[int, int]) -> None:
    assert parse_years(text) == years


@pytest.mark.parametrize(
    "text", ["", "-", "abc", "2000-1990", "1995 2000", "20000", "1e3", "2000--"]
)
def test_parse_years_refuses_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse_years(text)
    message = str(caught.value)
    assert message.startswith(f"years {text!r}") and "\n" not in message


def test_check_genres_gives_the_catalogue_spelling() -> None:
    assert check_genres(["sci-fi", "DRAMA", "Sci-Fi"], CATALOG) == ("Sci-Fi", "Drama")
    assert check_genres([], CATALOG) == ()
    with pytest.raises(ParameterError) as caught:
        check_genres(["Drama", "Westerns"], CATALOG)
    message = str(caught.value)
    assert message.startswith("unknown genre 'Westerns'; known: Action, Adventure, Animation")
    assert "(no genres listed)" not in message and "\n" not in message
