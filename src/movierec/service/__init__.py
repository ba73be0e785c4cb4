"""HTTP API and web page over a ``Recommender`` and, optionally, a precomputed ``Store``.

``schemas``     request and response models, the limits each field obeys, the 4xx errors
``middleware``  ``BodyLimit``: request bodies over ``MAX_BODY_BYTES`` get a 413
``shaping``     index space and loaded metadata -> the JSON answered (``display``'s movies
                with their IMDb/TMDB links and ``because`` lists)
``params``      the filter parameters -> ``movierec.filters.Filters`` (bad ones: a 422)
``sources``     whether the store (filtered) or the model answers a known user, and why
``pages``       the HTML: the page in ``web/``, the run's report at /report, the docs
``app``         ``create_app``: the JSON routes and error handlers, then ``pages``
``limits``      ``ServerLimits``: connection limits, uvicorn's and ours (408, 431)
``server``      ``load_app``, ``serve``: check the run and the store, then run uvicorn
"""

from movierec.service.app import create_app
from movierec.service.limits import GuardedHttpTools, ServerLimits, raise_open_files_limit
from movierec.service.middleware import BodyLimit
from movierec.service.pages import WEB_DIR
from movierec.service.schemas import (
    INT32_MAX,
    MAX_BODY_BYTES,
    MAX_HISTORY_LIMIT,
    MAX_K,
    MAX_LIKED,
    MAX_QUERY_CHARS,
    MAX_SEARCH_LIMIT,
    MAX_TITLE_CHARS,
)
from movierec.service.server import (
    app_from_env,
    freeze_heap,
    limit_compute_threads,
    load_app,
    serve,
)

__all__ = [
    "INT32_MAX",
    "MAX_BODY_BYTES",
    "MAX_HISTORY_LIMIT",
    "MAX_K",
    "MAX_LIKED",
    "MAX_QUERY_CHARS",
    "MAX_SEARCH_LIMIT",
    "MAX_TITLE_CHARS",
    "WEB_DIR",
    "BodyLimit",
    "GuardedHttpTools",
    "ServerLimits",
    "app_from_env",
    "create_app",
    "freeze_heap",
    "limit_compute_threads",
    "load_app",
    "raise_open_files_limit",
    "serve",
]
