"""The FastAPI app: JSON API under /v1, /health, the web page at /, the run's report at
/report and the API docs.

Thin on purpose: validate the request (``schemas``, ``params`` for the filters), translate
raw ids to indices, call the recommender or the store (``sources`` says which answers),
shape the JSON (``shaping``). Every bad request gets a 4xx JSON body ``{"error": ...,
"detail": ...}``, never a 5xx.

Concurrency: every endpoint is ``async``. Store lookups run on the event loop (a SQLite
primary-key lookup takes microseconds, less than a thread hop); every call into the
recommender runs in the thread pool, one hop per request, so a slow model call never stalls
store lookups. The recommender must therefore tolerate concurrent read-only calls.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import Body, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from movierec.errors import ParameterError
from movierec.filters import Filters
from movierec.service.middleware import BodyLimit
from movierec.service.pages import mount_pages
from movierec.service.params import applied, build_filters, query_filters
from movierec.service.schemas import (
    ERRORS,
    MAX_BODY_BYTES,
    ErrorBody,
    Genres,
    Health,
    History,
    HistoryLimit,
    K,
    LikedRecommendations,
    LikedRequest,
    ModelInfo,
    MovieId,
    MovieSearch,
    SearchLimit,
    SearchText,
    SimilarMovies,
    StoreInfo,
    Unresolved,
    UserId,
    UserRecommendations,
)
from movierec.service.shaping import Shaper, genre_counts, model_answer, store_answer
from movierec.service.sources import from_store
from movierec.store import Store

if TYPE_CHECKING:
    from movierec.recommend import Recommender

log = logging.getLogger(__name__)

STORE_CHECK_INTERVAL_S = 1.0


class _NoMatch:
    item_idx = None
    candidates: list[int] = []
    reason = "not a movie id or title"


def _active(filters: Filters) -> Filters | None:
    return filters if filters.active else None


def create_app(
    recommender: Recommender, store: Store | None = None, *, report: bytes | None = None
) -> FastAPI:
    """The FastAPI app: JSON API under /v1, /health, the web page at /; ``report``: the
    run's report.html, served at /report (404 without one)."""
    rec = recommender
    shape = Shaper(rec, store)
    by_query = Depends(query_filters(rec.catalog))
    genres = Genres(genres=[{"name": g, "movies": n} for g, n in genre_counts(rec.catalog).items()])
    app = FastAPI(
        title="movierec",
        version="1",
        summary="Movie recommendations from a Neural Collaborative Filtering model",
        responses=ERRORS,
        docs_url=None,  # served below from local files: nothing outside the machine is needed
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    _install_error_handlers(app)

    def user_index(user_id: int) -> int:
        idx = int(rec.users.index(user_id)[0])
        if idx < 0:
            raise HTTPException(404, f"unknown user {user_id}")
        return idx

    def movie_index(movie_id: int) -> int:
        idx = int(rec.items.index(movie_id)[0])
        if idx < 0:
            raise HTTPException(404, f"unknown movie {movie_id}")
        return idx

    @app.get("/health", tags=["service"])
    async def health() -> Health:
        if store is not None:
            store.reload_if_changed(STORE_CHECK_INTERVAL_S)
        return Health(status="ok", store=store is not None)

    loaded = model_answer(rec)  # read once: the run directory may move while serving

    @app.get("/v1/model", tags=["service"])
    async def model_info() -> ModelInfo:
        """Which model answers (as loaded at start): name, training date, evaluation
        metrics; the store now serving and its date. Local paths appear as file names."""
        store_info = None
        if store is not None:
            store.reload_if_changed(STORE_CHECK_INTERVAL_S)
            store_info = StoreInfo(**store_answer(store))
        return ModelInfo(**loaded, store=store_info, report=report is not None)

    def allowed_raw(filters: Filters) -> Callable[[int], bool]:
        """The filters as a test of a raw movie id (movies the model lacks: never)."""
        mask = filters.allowed(rec.catalog, rec.items)
        return lambda movie_id: (i := shape.index_of(movie_id)) >= 0 and bool(mask[i])

    @app.get("/v1/users/{user_id}/recommendations", tags=["recommendations"])
    async def user_recommendations(
        user_id: UserId, k: K = 10, filters: Filters = by_query
    ) -> UserRecommendations:
        """Top-k unseen movies for a user, each with the watched movies behind it: from
        the precomputed store when it holds enough (filtered, when filters are given),
        otherwise computed by the model now (``source`` says which; ``fallback`` why the
        model answered although a store is loaded)."""
        answer: dict[str, Any] = {"user_id": user_id, "k": k, "filters": applied(filters)}
        fallback = None
        if store is not None:
            store.reload_if_changed(STORE_CHECK_INTERVAL_S)
            test = allowed_raw(filters) if filters.active else None
            known = bool(rec.users.index(user_id)[0] >= 0)
            rows, fallback = from_store(store, user_id, k, test, known)
            if rows is not None:
                items = shape.stored(rows)
                return UserRecommendations(**answer, source="store", fallback=None, items=items)
        idx = user_index(user_id)
        users = np.array([idx], dtype=np.int32)
        call = functools.partial(rec.for_users, filters=_active(filters), because=True)
        recs = await run_in_threadpool(call, users, k)
        items = shape.recommended(recs)
        return UserRecommendations(**answer, source="model", fallback=fallback, items=items)

    def cold_start(body: LikedRequest) -> LikedRecommendations | JSONResponse:
        filters = build_filters(
            rec.catalog,
            "body",
            genre=body.genre,
            exclude_genre=body.exclude_genre,
            years=body.years,
            exclude=body.exclude,
        )
        resolved: list[int] = []
        unresolved: list[Unresolved] = []
        for query in body.liked:
            try:
                match = rec.find_movie(query, limit=5)
            except (ValueError, OverflowError):  # e.g. "²" or a 30-digit "id": names nothing
                match = _NoMatch()
            if match.item_idx is not None:
                if match.item_idx not in resolved:
                    resolved.append(int(match.item_idx))
                continue
            unresolved.append(
                Unresolved(
                    query=str(query),
                    reason=getattr(match, "reason", "") or "no exact match",
                    candidates=shape.movies(match.candidates),
                )
            )
        if unresolved:
            detail = f"{len(unresolved)} of the liked movies did not name exactly one movie"
            err = ErrorBody(error="unresolved_movies", detail=detail, unresolved=unresolved)
            return JSONResponse(err.model_dump(), status_code=404)
        liked = np.array(resolved, dtype=np.int32)
        recs = rec.for_liked(liked, body.k, filters=_active(filters), because=True)
        return LikedRecommendations(
            liked=shape.movies(resolved),
            k=body.k,
            filters=applied(filters),
            items=shape.recommended(recs),
        )

    @app.post("/v1/recommendations", tags=["recommendations"], response_model=LikedRecommendations)
    async def liked_recommendations(body: Annotated[LikedRequest, Body()]) -> Any:
        """Cold start: recommendations for someone who names movies they like, each with
        the liked movies behind it. Each entry is a movie id or a title (with or without the
        year). If any entry names no movie, or several, the answer is 404 listing each such
        entry with its closest matches, so the caller can pick one. The filters are the
        query parameters' of GET /v1/users/{user_id}/recommendations, as body fields."""
        return await run_in_threadpool(cold_start, body)

    @app.get("/v1/movies/{movie_id}/similar", tags=["movies"])
    async def similar(movie_id: MovieId, k: K = 10, filters: Filters = by_query) -> SimilarMovies:
        """Movies most like this one (the movie itself excluded), filtered when asked."""
        idx = movie_index(movie_id)
        call = functools.partial(rec.similar, filters=_active(filters))
        recs = await run_in_threadpool(call, idx, k)
        return SimilarMovies(
            movie=shape.movie(idx),
            k=k,
            filters=applied(filters),
            items=shape.scored(recs.items[0], recs.scores[0]),
        )

    @app.get("/v1/genres", tags=["movies"])
    async def genre_list() -> Genres:
        """Every genre the filters accept, with how many movies have it."""
        return genres

    @app.get("/v1/movies", tags=["movies"])
    async def search(q: SearchText, limit: SearchLimit = 10) -> MovieSearch:
        """Type-ahead: titles that start with, then contain, ``q``; popular first."""
        found = await run_in_threadpool(rec.search, q, limit)
        return MovieSearch(query=q, items=shape.movies(found[:limit]))

    @app.get("/v1/users/{user_id}/history", tags=["users"])
    async def history(user_id: UserId, limit: HistoryLimit = 50) -> History:
        """The movies a user rated in the training data, latest first."""
        items, timestamps = await run_in_threadpool(rec.history, user_index(user_id))
        rows = shape.watched(items[:limit], timestamps[:limit])
        return History(user_id=user_id, total=len(items), items=rows)

    mount_pages(app, report)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        body = {"error": slug.get(exc.status_code, "bad_request"), "detail": exc.detail}
        if exc.status_code >= 500:
            body["error"] = "internal_error"
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Keep only plain fields: the raw input and ctx may hold values JSON cannot encode.
        detail = [
            {
                "loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return JSONResponse({"error": "validation_error", "detail": detail}, status_code=422)

    async def bad_parameter(request: Request, exc: ParameterError) -> JSONResponse:
        detail = [{"loc": [], "msg": str(exc), "type": "value_error"}]
        return JSONResponse({"error": "validation_error", "detail": detail}, status_code=422)

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal_error", "detail": None}, status_code=500)

    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(ParameterError, bad_parameter)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crashed)
