"""Load a run (and a store) and serve it with uvicorn under ``limits.ServerLimits``.

The run and the store are checked before uvicorn starts, so a bad one is a one-line
``MovierecError``, never a worker's traceback.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from pathlib import Path

from fastapi import FastAPI

from movierec.artifacts.layout import REPORT
from movierec.service.app import create_app
from movierec.service.limits import (
    LIMIT_CONCURRENCY,
    MAX_HEAD_BYTES,
    REQUEST_TIMEOUT_S,
    TIMEOUT_KEEP_ALIVE_S,
    ServerLimits,
    raise_open_files_limit,
)
from movierec.store import Store

log = logging.getLogger(__name__)


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
    app = create_app(recommender, store, report=read_report(run_dir))
    freeze_heap()
    return app


def read_report(run_dir: str | os.PathLike[str]) -> bytes | None:
    """The run's report.html, read once at start like the rest of the run; None when the
    run has none (or it cannot be read: the report is optional, serving is not)."""
    try:
        return (Path(run_dir) / REPORT).read_bytes()
    except OSError:
        return None


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
    limit_concurrency: int = LIMIT_CONCURRENCY,
    timeout_keep_alive: float = TIMEOUT_KEEP_ALIVE_S,
    request_timeout: float = REQUEST_TIMEOUT_S,
    max_head_bytes: int = MAX_HEAD_BYTES,
) -> None:
    """Load a run directory (and a store), then serve until interrupted.

    The run and the store are loaded and checked here, before uvicorn starts, whatever
    ``workers`` is: a damaged run raises ``ArtifactError``, a bad store ``StoreError``
    (both ``MovierecError``), never a traceback from a worker. With ``workers`` > 1 this
    process loads the run once to check it, then each worker process loads its own copy.
    The limits are ``ServerLimits``'s (a bad value raises ``ParameterError``).
    """
    import uvicorn

    limits = ServerLimits(limit_concurrency, timeout_keep_alive, request_timeout, max_head_bytes)
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
    uvicorn.run("movierec.service.server:app_from_env", factory=True, workers=workers, **options)


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
    have = raise_open_files_limit(want)
    if have < want:
        log.warning(
            "open files limit (ulimit -n) %d is below the concurrency limit %d + 256: once "
            "the process runs out of descriptors, new connections wait for others to close",
            have,
            limit_concurrency,
        )
