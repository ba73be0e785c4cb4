"""The FastAPI app: JSON API under /v1, /health, the web page at / and the API docs.

Thin on purpose: validate the request (``schemas``), translate raw ids to indices, call the
recommender or the store, shape the JSON (``shaping``). Every bad request gets a 4xx JSON
body ``{"error": ..., "detail": ...}``, never a 5xx.

Concurrency: every endpoint is ``async``. Store lookups run on the event loop (a SQLite
primary-key lookup takes microseconds, less than a thread hop); every call into the
recommender runs in the thread pool, one hop per request, so a slow model call never stalls
store lookups. The recommender must therefore tolerate concurrent read-only calls.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from movierec.service.middleware import BodyLimit
from movierec.service.schemas import (
    ERRORS,
    MAX_BODY_BYTES,
    ErrorBody,
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
from movierec.service.shaping import Shaper, model_answer, store_answer
from movierec.store import Store

if TYPE_CHECKING:
    from movierec.recommend import Recommender

log = logging.getLogger(__name__)

STORE_CHECK_INTERVAL_S = 1.0
WEB_DIR = Path(__file__).with_name("web")


class _NoMatch:
    item_idx = None
    candidates: list[int] = []
    reason = "not a movie id or title"


def create_app(recommender: Recommender, store: Store | None = None) -> FastAPI:
    """The FastAPI app: JSON API under /v1, /health, the web page at /."""
    rec = recommender
    shape = Shaper(rec, store)
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
        return ModelInfo(**loaded, store=store_info)

    @app.get("/v1/users/{user_id}/recommendations", tags=["recommendations"])
    async def user_recommendations(user_id: UserId, k: K = 10) -> UserRecommendations:
        """Top-k unseen movies for a user: precomputed when the store has them (and holds
        at least k per user), otherwise computed by the model now."""
        rows = None
        if store is not None:
            store.reload_if_changed(STORE_CHECK_INTERVAL_S)
            rows = store.get(user_id, k)
            if rows is not None and (k <= store.k or rec.users.index(user_id)[0] < 0):
                return UserRecommendations(
                    user_id=user_id, k=k, source="store", items=shape.scored_raw(rows)
                )
        idx = user_index(user_id)
        recs = await run_in_threadpool(rec.for_users, np.array([idx], dtype=np.int32), k)
        items = shape.scored(recs.items[0], recs.scores[0])
        return UserRecommendations(user_id=user_id, k=k, source="model", items=items)

    def cold_start(body: LikedRequest) -> LikedRecommendations | JSONResponse:
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
        recs = rec.for_liked(np.array(resolved, dtype=np.int32), body.k)
        return LikedRecommendations(
            liked=shape.movies(resolved),
            k=body.k,
            items=shape.scored(recs.items[0], recs.scores[0]),
        )

    @app.post("/v1/recommendations", tags=["recommendations"], response_model=LikedRecommendations)
    async def liked_recommendations(body: Annotated[LikedRequest, Body()]) -> Any:
        """Cold start: recommendations for someone who names movies they like. Each entry is
        a movie id or a title (with or without the year). If any entry names no movie, or
        several, the answer is 404 listing each such entry with its closest matches, so the
        caller can pick one."""
        return await run_in_threadpool(cold_start, body)

    @app.get("/v1/movies/{movie_id}/similar", tags=["movies"])
    async def similar(movie_id: MovieId, k: K = 10) -> SimilarMovies:
        """Movies most like this one (the movie itself excluded)."""
        idx = movie_index(movie_id)
        recs = await run_in_threadpool(rec.similar, idx, k)
        return SimilarMovies(
            movie=shape.movie(idx), k=k, items=shape.scored(recs.items[0], recs.scores[0])
        )

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

    _mount_web(app)
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

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal_error", "detail": None}, status_code=500)

    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, crashed)


def _mount_web(app: FastAPI) -> None:
    index = WEB_DIR / "index.html"
    if not index.is_file():
        return
    page = index.read_text(encoding="utf-8")
    headers = {
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    @app.get("/", include_in_schema=False)
    async def home() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI over /openapi.json, its scripts served by this app (no CDN)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="movierec API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )
