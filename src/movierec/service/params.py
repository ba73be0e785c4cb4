"""The filters of a request -> ``movierec.filters.Filters``, or a 422 naming the field.

``schemas`` bounds the raw values (how many, how long); what needs the catalogue (an unknown
genre) or the filters' own grammar (``years``) is checked here, through the same functions
the CLI uses, so both report the same one-line message. The answer's ``filters`` field is
``applied``: the filters in force, genres in the catalogue's spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError

from movierec.data import Catalog
from movierec.errors import ParameterError
from movierec.filters import Filters, check_genres, parse_years
from movierec.service.schemas import ExcludeGenreQuery, ExcludeQuery, GenreQuery, YearsQuery


def build_filters(
    catalog: Catalog,
    where: str,
    *,
    genre: Sequence[str] = (),
    exclude_genre: Sequence[str] = (),
    years: str | None = None,
    exclude: Sequence[int] = (),
) -> Filters:
    """``Filters`` from request values; ``where`` ("query" or "body") goes in the 422's
    ``loc``, beside the field's name."""

    def checked(field: str, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except ParameterError as e:
            error = {"loc": (where, field), "msg": str(e), "type": "value_error"}
            raise RequestValidationError([error]) from None

    return Filters(
        genres=checked("genre", lambda: check_genres(list(genre), catalog)),
        exclude_genres=checked("exclude_genre", lambda: check_genres(list(exclude_genre), catalog)),
        years=None if years is None else checked("years", lambda: parse_years(years)),
        exclude=tuple(exclude),
    )


def query_filters(catalog: Catalog) -> Callable[..., Filters]:
    """A FastAPI dependency: the four filter query parameters of ``catalog``'s movies."""

    def dependency(
        genre: GenreQuery = [],  # noqa: B006  (FastAPI copies parameter defaults)
        exclude_genre: ExcludeGenreQuery = [],  # noqa: B006
        years: YearsQuery = None,
        exclude: ExcludeQuery = [],  # noqa: B006
    ) -> Filters:
        return build_filters(
            catalog, "query", genre=genre, exclude_genre=exclude_genre, years=years, exclude=exclude
        )

    return dependency


def applied(filters: Filters) -> dict[str, Any]:
    """The ``filters`` field of an answer."""
    return {
        "genre": list(filters.genres),
        "exclude_genre": list(filters.exclude_genres),
        "years": filters.years,
        "exclude": list(filters.exclude),
    }
