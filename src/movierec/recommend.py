"""Recommendations from a trained run: known users, a new person's liked list, similar movies.

Everything goes through ``topk.top_k``: batch-first, index space, seen movies excluded as an
argument. Only the model protocol is used (``movierec.models.protocol``): a known user's
input is formed from everything they watched (train, validation and test), which is also
what is excluded; a new person is the model's ``score_new_user`` of their liked list;
similar movies are the nearest items by cosine over the model's ``item_vectors()``.

Request-time ``filters.Filters`` (genres, years, movies to leave out) become one mask per
call, applied as ``-inf`` before ``top_k``. ``because=True`` adds, per recommendation, the
input movies behind it (``movierec.explain``): a known user's latest ``explain.INPUTS``
watched movies, or the liked list. Every user into a store: ``movierec.batch``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from movierec import explain
from movierec.artifacts import Run, load_run
from movierec.data import Catalog, IdMap
from movierec.filters import Filters
from movierec.foldin import FoldInConfig
from movierec.models import TorchScorer, inputs_for
from movierec.split import concat
from movierec.titles import MovieMatch, TitleIndex
from movierec.topk import Recommendations, top_k


@dataclass
class History:
    """Per user, watched items latest first: CSR layout over (items, timestamps)."""

    indptr: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray

    @classmethod
    def build(cls, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, n_users: int):
        order = np.lexsort((items, -timestamps, users))  # equal times: split's tie-break
        indptr = np.concatenate(([0], np.cumsum(np.bincount(users, minlength=n_users))))
        return cls(indptr, items[order], timestamps[order])

    def of(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.indptr[user], self.indptr[user + 1]
        return self.items[s:e], self.timestamps[s:e]

    def latest(self, users: np.ndarray, m: int) -> np.ndarray:
        """(B, m) int64: each user's latest ``m`` items, latest first, -1 padded."""
        users = np.asarray(users, dtype=np.int64)
        at = self.indptr[users][:, None] + np.arange(m, dtype=np.int64)[None, :]
        ok = at < self.indptr[users + 1][:, None]
        if not self.items.size:
            return np.full(at.shape, -1, dtype=np.int64)
        return np.where(ok, self.items[np.minimum(at, self.items.size - 1)], -1).astype(np.int64)


class Recommender:
    """A trained run ready to answer: ``for_users``, ``for_liked``, ``similar``, ``history``.

    Every method only reads the run (the served model included), so threads may call them
    concurrently; the one lazily built value (item vectors) is built under a lock.
    """

    def __init__(self, run: Run, fold: FoldInConfig = FoldInConfig()) -> None:
        scorer = run.model  # serve from everything each user watched (a history model reads it)
        model = scorer.model.with_inputs(inputs_for(run.split, "all"))
        self.run = dataclasses.replace(run, model=TorchScorer(model, scorer.device))
        self.users: IdMap = run.users
        self.items: IdMap = run.items
        self.catalog: Catalog = run.catalog
        self.fold = fold
        everything = concat(run.split.train, run.split.validation, run.split.test)
        self.seen: sp.csr_matrix = everything.to_csr()
        self.popularity = everything.item_counts()
        self.timeline = History.build(
            everything.users, everything.items, everything.timestamps, len(self.users)
        )
        self.titles = TitleIndex(self.catalog, self.items, self.popularity)
        self._item_vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | None = "cpu") -> Recommender:
        return cls(load_run(run_dir, device=device))

    @property
    def model(self) -> torch.nn.Module:
        return self.run.model.model

    @property
    def info(self) -> dict[str, Any]:
        manifest_time = (self.run.path / "manifest.json").stat().st_mtime
        return {
            "model": self.run.config.model,
            "trained_at": dt.datetime.fromtimestamp(manifest_time, dt.UTC).isoformat(),
            "data": self.run.data,
            "training": self.run.training,
            "metrics": self.run.metrics,
            "users": len(self.users),
            "movies": len(self.items),
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
        """Top ``k`` for known users (B,), what they watched excluded; ``filters`` decide
        what may be recommended; ``because`` adds each item's reasons from their latest
        ``explain.INPUTS`` watched movies."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        scores = self._allowed(self.run.model.score_all(user_idx), filters)
        rec = top_k(scores, k, self.seen[user_idx] if exclude_seen else None)
        if not because:
            return rec
        return self._because(rec, self.timeline.latest(user_idx, explain.INPUTS))

    def for_liked(
        self,
        item_idx: np.ndarray,
        k: int,
        *,
        filters: Filters | None = None,
        because: bool = False,
    ) -> Recommendations:
        """Cold start from movies a person likes, most important first; ``because`` gives
        the liked movies behind each item."""
        given = np.asarray(item_idx, dtype=np.int64)
        liked = given[np.sort(np.unique(given, return_index=True)[1])]  # first mention kept
        # reads the shared model and writes nothing (protocol.Model): safe across threads
        scores = self.model.score_new_user(torch.as_tensor(liked), self.fold)
        scores = scores.float().cpu().numpy()[None, :]
        scores[0, liked] = -np.inf  # never recommend what the person named
        rec = top_k(self._allowed(scores, filters), k)
        if not because:
            return rec
        return self._because(rec, liked[None, : explain.INPUTS])

    def similar(self, item_idx: int, k: int, *, filters: Filters | None = None) -> Recommendations:
        if self._item_vectors is None:
            with self._lock:  # built once, by the first request that needs them
                if self._item_vectors is None:
                    self._item_vectors = self.model.item_vectors().float().cpu().numpy()
        v = self._item_vectors
        scores = (v @ v[item_idx])[None, :]
        scores[0, item_idx] = -np.inf  # not the movie itself
        return top_k(self._allowed(scores, filters), k)

    def _allowed(self, scores: np.ndarray, filters: Filters | None) -> np.ndarray:
        """``scores`` (B, n_items) with what ``filters`` drop set to -inf (in place)."""
        if filters is not None and filters.active:
            scores[:, ~filters.allowed(self.catalog, self.items)] = -np.inf
        return scores

    def _because(self, rec: Recommendations, inputs: np.ndarray) -> Recommendations:
        reasons = explain.because(self.model, inputs, rec.items, self.run.model.device)
        return dataclasses.replace(rec, because=reasons)

    def history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        return self.timeline.of(user_idx)

    def find_movie(self, query: str | int, limit: int = 10) -> MovieMatch:
        return self.titles.find(query, limit)

    def search(self, q: str, limit: int) -> np.ndarray:
        return self.titles.search(q, limit)
