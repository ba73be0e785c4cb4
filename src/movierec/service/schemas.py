"""The HTTP API's request and response models, the limits they enforce, and its errors.

Every request field is validated here (pydantic), so a bad request is a 422 before any
code of ours runs; ``ERRORS`` documents the 4xx answers in the OpenAPI schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path as PathParam
from fastapi import Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)

from movierec.filters import MAX_EXCLUDE

MAX_K = 100
MAX_LIKED = 100
MAX_QUERY_CHARS = 100
MAX_TITLE_CHARS = 300
MAX_SEARCH_LIMIT = 50
MAX_HISTORY_LIMIT = 1000
MAX_BODY_BYTES = 64 * 1024
MAX_GENRES = 30  # genre names in one list (to keep or to drop)
MAX_GENRE_CHARS = 50
MAX_YEARS_CHARS = 20
INT32_MAX = 2**31 - 1


UserId = Annotated[int, PathParam(ge=0, le=INT32_MAX, description="Raw MovieLens user id")]
MovieId = Annotated[int, PathParam(ge=0, le=INT32_MAX, description="Raw MovieLens movie id")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many movies to return")]
SearchText = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)]
SearchLimit = Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT)]
HistoryLimit = Annotated[int, Query(ge=1, le=MAX_HISTORY_LIMIT)]

# The filters, as query parameters and as body fields: same names, same limits.
GenreName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_GENRE_CHARS)]
RawMovieId = Annotated[int, Field(ge=0, le=INT32_MAX)]
GENRE_TEXT = (
    "Keep only movies having at least one of these genres (repeat the parameter for each; "
    "case-insensitive; GET /v1/genres lists them)"
)
EXCLUDE_GENRE_TEXT = "Drop movies having any of these genres (repeatable, case-insensitive)"
YEARS_TEXT = (
    "Release years, inclusive: 2000-2019, 2000- (from 2000), -1999 (up to 1999) or 1995; "
    "movies without a year are dropped"
)
EXCLUDE_TEXT = f"Raw movie ids never to recommend (repeatable, at most {MAX_EXCLUDE})"
GenreQuery = Annotated[list[GenreName], Query(max_length=MAX_GENRES, description=GENRE_TEXT)]
ExcludeGenreQuery = Annotated[
    list[GenreName], Query(max_length=MAX_GENRES, description=EXCLUDE_GENRE_TEXT)
]
YearsQuery = Annotated[str | None, Query(max_length=MAX_YEARS_CHARS, description=YEARS_TEXT)]
ExcludeQuery = Annotated[list[RawMovieId], Query(max_length=MAX_EXCLUDE, description=EXCLUDE_TEXT)]


def _json_integer(value: Any) -> Any:
    """Admit what JSON Schema calls an integer: 7 or 7.0; never 7.5, "7" or true."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    return value


def _liked_entry(value: Any) -> int | str:
    """A liked movie: an integer id in int32 range, or a title of 1..MAX_TITLE_CHARS."""
    if isinstance(value, str):
        if not 1 <= len(value) <= MAX_TITLE_CHARS:
            raise ValueError(f"a title has 1 to {MAX_TITLE_CHARS} characters")
        return value.strip()  # a blank title names no movie: 404, like any unknown one
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected a movie id (integer) or a title (string)")
    if not 0 <= value <= INT32_MAX:
        raise ValueError(f"a movie id is between 0 and {INT32_MAX}")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
JsonMovieId = Annotated[  # the schema spelled out: pydantic would write "ge"/"le" here
    JsonInt,
    Field(ge=0, le=INT32_MAX),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": INT32_MAX}),
]
LikedEntry = Annotated[
    int | str,
    PlainValidator(_liked_entry),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": INT32_MAX},
                {"type": "string", "minLength": 1, "maxLength": MAX_TITLE_CHARS},
            ]
        }
    ),
]


class Reason(BaseModel):
    movie_id: int
    title: str = Field(description="Title with its year", examples=["Toy Story (1995)"])


class Movie(BaseModel):
    movie_id: int
    title: str
    year: int | None = Field(description="Release year; null when the title has none")
    genres: list[str]
    imdb_url: str | None = Field(
        description="The movie's IMDb page (from the release's links.csv); null when unknown",
        examples=["https://www.imdb.com/title/tt0114709/"],
    )
    tmdb_url: str | None = Field(
        description="The movie's TMDB page (from links.csv); null when unknown",
        examples=["https://www.themoviedb.org/movie/862"],
    )


class ScoredMovie(Movie):
    score: float | None = Field(description="Model score; higher is better")


class RecommendedMovie(ScoredMovie):
    because: list[Reason] = Field(
        description="Up to 3 movies of the user's history (or of the liked list) that "
        "contribute most to this recommendation, strongest first; empty when the model "
        "has nothing to say"
    )


class AppliedFilters(BaseModel):
    genre: list[str] = Field(description="Genres kept, in the catalogue's spelling")
    exclude_genre: list[str] = Field(description="Genres dropped, in the catalogue's spelling")
    years: tuple[int, int] | None = Field(description="First and last release year, inclusive")
    exclude: list[int] = Field(description="Movie ids excluded")


class WatchedMovie(Movie):
    timestamp: int = Field(description="When the user rated it, seconds since the epoch")


FILTERS_TEXT = "The filters applied (none: every list empty, years null)"


class UserRecommendations(BaseModel):
    user_id: int
    k: int
    source: Literal["store", "model"] = Field(
        description="Who answered: the precomputed store, or the model scoring now"
    )
    fallback: Literal["depth", "filter", "missing"] | None = Field(
        description="Why the model answered although a store is loaded: k is over the "
        "depth the store holds per user (depth), the stored rows left fewer than k movies "
        "once filtered (filter), or the store has no rows for this user (missing); null "
        "when the store answered or none is loaded"
    )
    filters: AppliedFilters = Field(description=FILTERS_TEXT)
    items: list[RecommendedMovie]


class LikedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    liked: list[LikedEntry] = Field(
        min_length=1,
        max_length=MAX_LIKED,
        description="Movie ids (integers) or titles, with or without the year",
        examples=[[1, "Inception (2010)", "The Matrix (1999)"]],
    )
    k: JsonInt = Field(10, ge=1, le=MAX_K)
    genre: list[GenreName] = Field([], max_length=MAX_GENRES, description=GENRE_TEXT)
    exclude_genre: list[GenreName] = Field(
        [], max_length=MAX_GENRES, description=EXCLUDE_GENRE_TEXT
    )
    years: str | None = Field(None, max_length=MAX_YEARS_CHARS, description=YEARS_TEXT)
    exclude: list[JsonMovieId] = Field([], max_length=MAX_EXCLUDE, description=EXCLUDE_TEXT)


class LikedRecommendations(BaseModel):
    liked: list[Movie]
    k: int
    filters: AppliedFilters = Field(description=FILTERS_TEXT)
    items: list[RecommendedMovie]


class SimilarMovies(BaseModel):
    movie: Movie
    k: int
    filters: AppliedFilters = Field(description=FILTERS_TEXT)
    items: list[ScoredMovie]


class Genre(BaseModel):
    name: str
    movies: int = Field(description="How many of the model's movies have this genre")


class Genres(BaseModel):
    genres: list[Genre] = Field(description="Every genre of the catalogue, by name")


class MovieSearch(BaseModel):
    query: str
    items: list[Movie]


class History(BaseModel):
    user_id: int
    total: int = Field(description="How many movies the user has rated in the training data")
    items: list[WatchedMovie]


class Health(BaseModel):
    status: Literal["ok"]
    store: bool


class StoreInfo(BaseModel):
    path: str
    created_at: str | None
    run_id: str | None
    k: int
    users: int | None
    meta: dict[str, Any]


class ModelInfo(BaseModel):
    model: str | None
    trained_at: str | None
    metrics: dict[str, Any]
    users: int
    movies: int
    info: dict[str, Any]
    store: StoreInfo | None
    report: bool = Field(description="Whether GET /report has the run's report")


class Unresolved(BaseModel):
    query: str
    reason: str
    candidates: list[Movie] = Field(description="Closest matches, best first")


class ErrorBody(BaseModel):
    error: str
    detail: Any = None
    unresolved: list[Unresolved] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Body is not valid UTF-8 JSON"),
        (404, "Unknown user, movie, or path; liked titles that name no single movie; no report"),
        (408, "Request not received in full in time (the connection is closed)"),
        (413, "Request body over 64 KiB"),
        (422, "Invalid parameters or body (an unknown genre or a bad year range included)"),
        (431, "Request line and headers over the limit, 16 KiB by default (connection closed)"),
    )
}
