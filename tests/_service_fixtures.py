"""Shared fixtures for the store, service and web tests: a tiny recommender whose answers are
known exactly, a store written from it, and a live uvicorn server in a thread.

``FakeRecommender`` implements the methods the service calls on ``movierec.recommend.
Recommender`` with 12 movies and 4 users on three hand-made taste axes (family,
science fiction, drama/romance), so every top-k below can be checked by eye. Filters are
the real ``movierec.filters.Filters``; a recommendation's ``because`` is the input movies
(history or liked list) most like it (dot product of the taste vectors, positive only).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from movierec.data import Catalog, IdMap
from movierec.filters import Filters
from movierec.service.limits import ServerLimits
from movierec.store import write_store
from movierec.titles import MovieMatch, TitleIndex
from movierec.topk import BECAUSE, Recommendations, top_k

#            raw id, title,          year, genres,                           (family, scifi, drama)
MOVIES = [
    (1, "Toy Story", 1995, "Adventure|Animation|Children", (1.0, 0.1, 0.0)),
    (2, "Jumanji", 1995, "Adventure|Children|Fantasy", (0.9, 0.2, 0.0)),
    (10, "Heat", 1995, "Action|Crime", (0.0, 0.1, 0.6)),
    (50, "Inception", 2010, "Action|Sci-Fi|Thriller", (0.0, 1.0, 0.2)),
    (60, "Interstellar", 2014, "Drama|Sci-Fi", (0.1, 0.9, 0.4)),
    (70, "Matrix, The", 1999, "Action|Sci-Fi", (0.0, 0.95, 0.0)),
    (80, "Hamlet", 1990, "Drama", (0.0, 0.0, 0.9)),
    (81, "Hamlet", 1996, "Drama", (0.0, 0.0, 0.85)),
    (90, "Amélie", 2001, "Comedy|Romance", (0.2, 0.0, 0.8)),
    (100, "Casablanca", 1942, "Drama|Romance", (0.0, 0.0, 1.0)),
    (110, "Alien", 1979, "Horror|Sci-Fi", (0.0, 0.7, 0.1)),
    (120, "Aliens", 1986, "(no genres listed)", (0.0, 0.75, 0.05)),
]
# (IMDb number, TMDB id) per raw movie id, -1 where unknown (Heat has no TMDB id; Aliens none)
LINKS = {1: (114709, 862), 2: (113497, 8844), 10: (113277, -1), 50: (1375666, 27205)}
LINKS |= {60: (816692, 157336), 70: (133093, 603), 80: (99726, 10264), 81: (116477, 10549)}
LINKS |= {90: (211915, 194), 100: (34583, 289), 110: (78748, 348), 120: (-1, -1)}
USERS = {  # raw user id: (taste, [(movie raw id, timestamp), ...])
    1: ((1.0, 0.2, 0.0), [(1, 100), (2, 300)]),
    2: ((0.0, 1.0, 0.1), [(50, 200), (70, 100)]),
    3: ((0.0, 0.1, 1.0), [(100, 50), (90, 70), (80, 60)]),
    7: ((0.3, 0.3, 0.3), [(10, 10)]),
}
POPULARITY = [5, 4, 3, 9, 6, 8, 2, 1, 3, 4, 2, 2]  # per movie, in MOVIES order


class FakeRecommender:
    """Same methods and attributes as ``movierec.recommend.Recommender``."""

    def __init__(self) -> None:
        self.catalog = Catalog(
            np.array([m[0] for m in MOVIES], dtype=np.int64),
            np.array([m[1] for m in MOVIES], dtype=object),
            np.array([m[2] for m in MOVIES], dtype=np.int16),
            np.array([m[3] for m in MOVIES], dtype=object),
            np.array([LINKS[m[0]][0] for m in MOVIES]),
            np.array([LINKS[m[0]][1] for m in MOVIES]),
        )
        self.items = IdMap(self.catalog.movie_ids)
        self.users = IdMap(np.array(sorted(USERS), dtype=np.int64))
        self.item_factors = np.array([m[4] for m in MOVIES], dtype=np.float32)
        self.user_factors = np.array([USERS[u][0] for u in self.users.raw], dtype=np.float32)
        rows, cols, times = [], [], []
        for u in self.users.raw:
            for movie, ts in USERS[int(u)][1]:
                rows.append(int(self.users.index(int(u))[0]))
                cols.append(int(self.items.index(movie)[0]))
                times.append(ts)
        shape = (len(self.users), len(self.items))
        self.seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
        self.times = sp.csr_matrix((np.array(times, np.float64), (rows, cols)), shape=shape)
        self.titles = TitleIndex(self.catalog, self.items, np.array(POPULARITY))
        self.info: dict[str, Any] = {
            "model": "fake-mf",
            "trained_at": "2024-01-02T03:04:05+00:00",
            "metrics": {"sampled": {"hr@10": 0.7, "ndcg@10": np.float32(0.5), "mrr": np.nan}},
            "run_id": "fake-run",
        }

    def for_users(
        self,
        user_idx: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        filters: Filters | None = None,
        because: bool = False,
    ) -> Recommendations:
        user_idx = np.asarray(user_idx)
        scores = self._allowed(self.user_factors[user_idx] @ self.item_factors.T, filters)
        recs = top_k(scores, k, self.seen[user_idx] if exclude_seen else None)
        inputs = [self.seen[u].indices for u in user_idx]
        return self._because(recs, inputs) if because else recs

    def for_liked(
        self,
        item_idx: np.ndarray,
        k: int,
        *,
        filters: Filters | None = None,
        because: bool = False,
    ) -> Recommendations:
        item_idx = np.asarray(item_idx)
        scores = self.item_factors[item_idx].mean(axis=0, keepdims=True) @ self.item_factors.T
        liked = sp.csr_matrix(
            (np.ones(len(item_idx)), (np.zeros(len(item_idx), int), item_idx)),
            shape=(1, len(self.items)),
        )
        recs = top_k(self._allowed(scores, filters), k, liked)
        return self._because(recs, [item_idx]) if because else recs

    def similar(self, item_idx: int, k: int, *, filters: Filters | None = None) -> Recommendations:
        v = self.item_factors / np.linalg.norm(self.item_factors, axis=1, keepdims=True)
        scores = self._allowed(v[[item_idx]] @ v.T, filters)
        return top_k(scores, k, sp.csr_matrix(([1.0], ([0], [item_idx])), shape=scores.shape))

    def _allowed(self, scores: np.ndarray, filters: Filters | None) -> np.ndarray:
        if filters is not None:
            scores[:, ~filters.allowed(self.catalog, self.items)] = -np.inf
        return scores

    def _because(self, recs: Recommendations, inputs: list[np.ndarray]) -> Recommendations:
        """Per recommendation, the inputs most like it (positive dot products only)."""
        out = np.full((*recs.items.shape, BECAUSE), -1, dtype=np.int32)
        for b, given in enumerate(inputs):
            given = np.asarray(given)
            for j, item in enumerate(recs.items[b]):
                if item < 0:
                    continue
                like = self.item_factors[given] @ self.item_factors[item]
                order = np.lexsort((given, -like))[:BECAUSE]
                best = given[order][like[order] > 0]
                out[b, j, : len(best)] = best
        return Recommendations(recs.items, recs.scores, out)

    def history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        row = self.times[user_idx]
        order = np.argsort(-row.data, kind="stable")
        return row.indices[order].astype(np.int32), row.data[order].astype(np.int64)

    def find_movie(self, query: str | int, limit: int = 10) -> MovieMatch:
        return self.titles.find(query, limit)

    def search(self, q: str, limit: int) -> np.ndarray:
        return self.titles.search(q, limit)


def raw_recommendations(
    rec: FakeRecommender, k: int, users: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user raw ids, movie raw ids with -1 padding, scores, because raw movie ids with -1
    padding) for the whole store."""
    user_idx = np.arange(len(rec.users)) if users is None else rec.users.index(users)
    r = rec.for_users(user_idx, k, because=True)

    def raw(idx: np.ndarray) -> np.ndarray:
        return np.where(idx >= 0, rec.items.raw[np.maximum(idx, 0)], -1)

    return rec.users.raw[user_idx], raw(r.items), r.scores, raw(r.because)


def make_store(path: Path, rec: FakeRecommender, k: int = 5, **meta: Any) -> Path:
    users, movie_ids, scores, because = raw_recommendations(rec, k)
    write_store(
        path,
        users,
        (movie_ids, scores, because),
        rec.catalog,
        {"run_id": "fake-run", **meta},
        progress=False,
    )
    return path


def tiny_run(path: Path, **data: Any) -> Path:
    """A real run directory (GMF, one epoch on the planted data: a few seconds)."""
    import torch
    from _train_fixtures import fast_config, planted_dataset

    from movierec.artifacts import save_run
    from movierec.split import leave_last_out
    from movierec.train import fit

    torch.set_num_threads(1)
    ds = planted_dataset()
    split = leave_last_out(ds.interactions)
    result = fit(split, fast_config("gmf", epochs=1), progress=False)
    return save_run(path, result, ds, split, data=data)


@contextlib.contextmanager
def live_server(app: Any, limits: ServerLimits | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 at a free port in a thread, with the limits
    ``service.serve`` applies (``ServerLimits()`` unless given); yields its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = (limits or ServerLimits()).uvicorn_options()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
