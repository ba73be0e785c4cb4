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
    WithJsonSchema,
)

MAX_K = 100
MAX_LIKED = 100
MAX_QUERY_CHARS = 100
MAX_TITLE_CHARS = 300
MAX_SEARCH_LIMIT = 50
MAX_HISTORY_LIMIT = 1000
MAX_BODY_BYTES = 64 * 1024
INT32_MAX = 2**31 - 1


UserId = Annotated[int, PathParam(ge=0, le=INT32_MAX, description="Raw MovieLens user id")]
MovieId = Annotated[int, PathParam(ge=0, le=INT32_MAX, description="Raw MovieLens movie id")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many movies to return")]
SearchText = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)]
SearchLimit = Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT)]
HistoryLimit = Annotated[int, Query(ge=1, le=MAX_HISTORY_LIMIT)]


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


class Movie(BaseModel):
    movie_id: int
    title: str
    year: int | None = Field(description="Release year; null when the title has none")
    genres: list[str]


class ScoredMovie(Movie):
    score: float | None = Field(description="Model score; higher is better")


class WatchedMovie(Movie):
    timestamp: int = Field(description="When the user rated it, seconds since the epoch")


class UserRecommendations(BaseModel):
    user_id: int
    k: int
    source: Literal["store", "model"]
    items: list[ScoredMovie]


class LikedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    liked: list[LikedEntry] = Field(
        min_length=1,
        max_length=MAX_LIKED,
        description="Movie ids (integers) or titles, with or without the year",
        examples=[[1, "Inception (2010)", "The Matrix (1999)"]],
    )
    k: JsonInt = Field(10, ge=1, le=MAX_K)


class LikedRecommendations(BaseModel):
    liked: list[Movie]
    k: int
    items: list[ScoredMovie]


class SimilarMovies(BaseModel):
    movie: Movie
    k: int
    items: list[ScoredMovie]


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
        (404, "Unknown user, movie, or path; or liked titles that name no single movie"),
        (408, "Request not received in full in time (the connection is closed)"),
        (413, "Request body over 64 KiB"),
        (422, "Invalid parameters or body"),
        (431, "Request line and headers over the limit, 16 KiB by default (connection closed)"),
    )
}
