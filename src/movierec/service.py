"""HTTP API and web page over a ``Recommender`` and, optionally, a precomputed ``Store``.

Thin on purpose: validate the request, translate raw ids to indices, call the recommender
or the store, shape the JSON. Every bad request gets a 4xx JSON body
``{"error": ..., "detail": ...}``, never a 5xx.

Concurrency: every endpoint is ``async``. Store lookups run on the event loop (a SQLite
primary-key lookup takes microseconds, less than a thread hop); every call into the
recommender runs in the thread pool, one hop per request, so a slow model call never stalls
store lookups. The recommender must therefore tolerate concurrent read-only calls.

Connections: ``serve`` runs uvicorn with ``httpguard``'s limits (concurrency, keep-alive,
a whole-request timeout, a request-head size limit) and checks the run and the store before
uvicorn starts, so a bad one is a one-line ``MovierecError``, never a worker's traceback.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import re
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from movierec import httpguard
from movierec.store import Store

if TYPE_CHECKING:
    from movierec.recommend import Recommender

log = logging.getLogger(__name__)

MAX_K = 100
MAX_LIKED = 100
MAX_QUERY_CHARS = 100
MAX_TITLE_CHARS = 300
MAX_SEARCH_LIMIT = 50
MAX_HISTORY_LIMIT = 1000
MAX_BODY_BYTES = 64 * 1024
INT32_MAX = 2**31 - 1
STORE_CHECK_INTERVAL_S = 1.0
WEB_DIR = Path(__file__).with_name("web")


UserId = Annotated[int, PathParam(ge=0, le=INT32_MAX, description="Raw MovieLens user id")]
MovieId = Annotated[int, PathParam(ge=0, le=INT32_MAX, description="Raw MovieLens movie id")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many movies to return")]


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


# --------------------------------------------------------------------------- schemas


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


# --------------------------------------------------------------------------- middleware


class BodyLimit:
    """Pure ASGI: reject request bodies over ``max_bytes`` with 413, counting bytes as they
    arrive (a missing or lying Content-Length does not matter). The body, at most
    ``max_bytes``, is buffered and replayed to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        first: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replay() -> Message:
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        body = _error_json("payload_too_large", f"request body over {self.max_bytes} bytes")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _error_json(error: str, detail: Any = None) -> bytes:
    return json.dumps({"error": error, "detail": detail}).encode()


# --------------------------------------------------------------------------- the app


class _Shaper:
    """Index space and raw ids -> response objects; the only place that reads the catalog.

    Movie objects are built once per movie and then shared (read-only): on the store path
    this is most of the per-request work that is ours rather than the framework's.
    """

    def __init__(self, recommender: Recommender, store: Store | None) -> None:
        self.catalog = recommender.catalog
        self.items = recommender.items
        self.store = store
        self._movies: dict[int, dict[str, Any]] = {}  # item index -> movie object
        self._index: dict[int, int] = {}  # raw movie id -> item index (-1: unknown)

    def movie(self, idx: int) -> dict[str, Any]:
        movie = self._movies.get(idx)
        if movie is None:
            c = self.catalog
            movie = self._movies[idx] = {
                "movie_id": int(c.movie_ids[idx]),
                "title": str(c.titles[idx]),
                "year": int(c.years[idx]) or None,
                "genres": _genres(str(c.genres[idx])),
            }
        return movie

    def index_of(self, movie_id: int) -> int:
        idx = self._index.get(movie_id)
        if idx is None:
            idx = self._index[movie_id] = int(self.items.index(movie_id)[0])
        return idx

    def scored(self, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        """One row of a ``Recommendations`` (index space), padding dropped."""
        return [
            {**self.movie(i), "score": _finite(s)}
            for i, s in zip(items.tolist(), scores.tolist(), strict=True)
            if i >= 0
        ]

    def scored_raw(self, rows: list[tuple[int, float]]) -> list[dict[str, Any]]:
        """Store rows (raw movie id, score). Movies the model does not know come from the
        store's own movies table; movies neither knows are dropped."""
        idx = [self.index_of(m) for m, _ in rows]
        missing = [m for (m, _), i in zip(rows, idx, strict=True) if i < 0]
        extra = self.store.movies(missing) if missing and self.store is not None else {}
        out = []
        for (movie_id, score), i in zip(rows, idx, strict=True):
            if i >= 0:
                out.append({**self.movie(i), "score": _finite(score)})
            elif movie_id in extra:
                title, year, genres = extra[movie_id]
                movie = {"movie_id": movie_id, "title": title, "year": year or None}
                out.append({**movie, "genres": _genres(genres), "score": _finite(score)})
        return out


class _NoMatch:
    item_idx = None
    candidates: list[int] = []
    reason = "not a movie id or title"


def _genres(text: str) -> list[str]:
    return [g for g in text.split("|") if g and g != "(no genres listed)"]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    """numpy values, NaN/inf (-> null) and other odd values -> plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def create_app(recommender: Recommender, store: Store | None = None) -> FastAPI:
    """The FastAPI app: JSON API under /v1, /health, the web page at /."""
    rec = recommender
    shape = _Shaper(rec, store)
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

    # What was loaded, read once: the run directory may move or vanish while serving.
    info = _without_local_paths(_jsonable(dict(getattr(rec, "info", {}) or {})))
    metrics = info.get("metrics")
    model_answer = {
        "model": _str_or_none(info.get("model", info.get("name"))),
        "trained_at": _str_or_none(
            info.get("trained_at", info.get("training_date", info.get("created_at")))
        ),
        "metrics": metrics if isinstance(metrics, dict) else {},
        "users": len(rec.users),
        "movies": len(rec.items),
        "info": info,
    }

    @app.get("/v1/model", tags=["service"])
    async def model_info() -> ModelInfo:
        """Which model answers (as loaded at start): name, training date, evaluation
        metrics; the store now serving and its date. Local paths appear as file names."""
        store_info = None
        if store is not None:
            store.reload_if_changed(STORE_CHECK_INTERVAL_S)
            meta = _without_local_paths(_jsonable(store.meta))
            store_info = StoreInfo(
                path=store.path.name,
                created_at=_str_or_none(meta.get("created_at")),
                run_id=_str_or_none(meta.get("run_id", meta.get("run"))),
                k=store.k,
                users=meta.get("users") if isinstance(meta.get("users"), int) else None,
                meta=meta,
            )
        return ModelInfo(**model_answer, store=store_info)

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
                    candidates=[shape.movie(int(i)) for i in match.candidates],
                )
            )
        if unresolved:
            detail = f"{len(unresolved)} of the liked movies did not name exactly one movie"
            err = ErrorBody(error="unresolved_movies", detail=detail, unresolved=unresolved)
            return JSONResponse(err.model_dump(), status_code=404)
        recs = rec.for_liked(np.array(resolved, dtype=np.int32), body.k)
        return LikedRecommendations(
            liked=[shape.movie(i) for i in resolved],
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
    async def search(
        q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
        limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT)] = 10,
    ) -> MovieSearch:
        """Type-ahead: titles that start with, then contain, ``q``; popular first."""
        found = await run_in_threadpool(rec.search, q, limit)
        return MovieSearch(query=q, items=[shape.movie(int(i)) for i in found[:limit]])

    @app.get("/v1/users/{user_id}/history", tags=["users"])
    async def history(
        user_id: UserId,
        limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_LIMIT)] = 50,
    ) -> History:
        """The movies a user rated in the training data, latest first."""
        items, timestamps = await run_in_threadpool(rec.history, user_index(user_id))
        rows = [
            {**shape.movie(i), "timestamp": t}
            for i, t in zip(items[:limit].tolist(), timestamps[:limit].tolist(), strict=True)
        ]
        return History(user_id=user_id, total=len(items), items=rows)

    _mount_web(app)
    return app


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_LOCAL_PATH = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\)")


def _without_local_paths(value: Any) -> Any:
    """JSON with every absolute local path (``/srv/runs/x``, ``~/x``, ``C:\\x``) cut to
    its last component: the API says what was loaded, not where this machine keeps it."""
    if isinstance(value, dict):
        return {k: _without_local_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_local_paths(v) for v in value]
    if isinstance(value, str) and _LOCAL_PATH.match(value):
        return PureWindowsPath(value).name if "\\" in value else PurePosixPath(value).name
    return value


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


def limit_compute_threads(n: int = 1) -> None:
    """Cap BLAS (and torch) threads per call. The server already runs requests
    concurrently; a BLAS pool per request on top oversubscribes a small machine (measured on
    2 cores: a 1x64 @ 64x20k product takes 0.85 ms on one thread, 3.6 ms on two, and tens of
    ms under concurrent requests)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def freeze_heap() -> None:
    """Move everything loaded so far (catalogue strings, title index, ...) out of the
    garbage collector's reach: those objects live as long as the process, and scanning them
    in every full collection shows up as latency spikes."""
    gc.collect()
    gc.freeze()


def load_app(
    run_dir: str | os.PathLike[str],
    store_path: str | os.PathLike[str] | None = None,
    compute_threads: int = 1,
) -> FastAPI:
    """Open the store (first: a wrong path fails before the model loads), load the run,
    and build the app, ready to serve."""
    from movierec.recommend import Recommender

    store = Store.open(store_path) if store_path is not None else None
    recommender = Recommender.load(run_dir)
    limit_compute_threads(compute_threads)
    app = create_app(recommender, store)
    freeze_heap()
    return app


_ENV = ("MOVIEREC_SERVE_RUN", "MOVIEREC_SERVE_STORE", "MOVIEREC_SERVE_THREADS")


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: ``serve`` passes its arguments in ``_ENV``."""
    run, store, threads = (os.environ.get(name, "") for name in _ENV)
    return load_app(run, store or None, int(threads or 1))


def serve(
    run_dir: str | os.PathLike[str],
    store_path: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    access_log: bool = False,
    log_level: str = "info",
    compute_threads: int = 1,
    limit_concurrency: int = httpguard.LIMIT_CONCURRENCY,
    timeout_keep_alive: float = httpguard.TIMEOUT_KEEP_ALIVE_S,
    request_timeout: float = httpguard.REQUEST_TIMEOUT_S,
    max_head_bytes: int = httpguard.MAX_HEAD_BYTES,
) -> None:
    """Load a run directory (and a store), then serve until interrupted.

    The run and the store are loaded and checked here, before uvicorn starts, whatever
    ``workers`` is: a damaged run raises ``ArtifactError``, a bad store ``StoreError``
    (both ``MovierecError``), never a traceback from a worker. With ``workers`` > 1 this
    process loads the run once to check it, then each worker process loads its own copy.
    The limits are ``httpguard.ServerLimits``'s (a bad value raises ``ValueError``).
    """
    import uvicorn

    limits = httpguard.ServerLimits(
        limit_concurrency, timeout_keep_alive, request_timeout, max_head_bytes
    )
    options = {
        "host": host,
        "port": port,
        "access_log": access_log,
        "log_level": log_level,
        **limits.uvicorn_options(),
    }
    if workers <= 1:
        app = load_app(run_dir, store_path, compute_threads)
        _ensure_open_files(limit_concurrency)
        uvicorn.run(app, **options)
        return
    _check_run_and_store(run_dir, store_path)  # fail here, not in every worker
    _ensure_open_files(limit_concurrency)
    values = (str(run_dir), "" if store_path is None else str(store_path), str(compute_threads))
    os.environ.update(zip(_ENV, values, strict=True))
    uvicorn.run("movierec.service:app_from_env", factory=True, workers=workers, **options)


def _check_run_and_store(
    run_dir: str | os.PathLike[str], store_path: str | os.PathLike[str] | None
) -> None:
    """What each worker will do at start, done once here and thrown away."""
    from movierec.recommend import Recommender

    if store_path is not None:
        Store.open(store_path).close()
    Recommender.load(run_dir)


def _ensure_open_files(limit_concurrency: int) -> None:
    """Every connection is a file descriptor: raise the soft limit towards the concurrency
    limit (plus room for the model's and the store's files), and say so if it cannot be."""
    want = limit_concurrency + 256
    have = httpguard.raise_open_files_limit(want)
    if have < want:
        log.warning(
            "open files limit (ulimit -n) %d is below the concurrency limit %d + 256: once "
            "the process runs out of descriptors, new connections wait for others to close",
            have,
            limit_concurrency,
        )
