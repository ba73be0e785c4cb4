"""Recommendations from a trained run: known users, a new person's liked list, similar movies.

Everything goes through ``topk.top_k``: batch-first, index space, seen movies excluded as an
argument. A known user's seen movies are everything they watched (train, validation and
test); a new person is folded into the model (``foldin``); similar movies are the nearest
items by cosine over the model's learned item representations.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import torch

from movierec.artifacts import Run, load_run
from movierec.data import Catalog, IdMap
from movierec.foldin import FoldInConfig, fold_in, score_folded
from movierec.history import HistoryModel, history_for
from movierec.split import concat
from movierec.titles import MovieMatch, TitleIndex
from movierec.topk import Recommendations, top_k


def item_vectors(model: torch.nn.Module) -> np.ndarray:
    """Unit-length item representations: every item embedding table, each normalised, side by
    side (GMF's table weighted by its predict layer, which is how the model reads it)."""
    if isinstance(model, HistoryModel):
        return model.item_vectors().cpu().numpy()
    parts = []
    for name, table in model.named_parameters():
        if not name.endswith("item.weight"):
            continue
        t = table.detach().float()
        if name == "mf.item.weight" and hasattr(model, "predict"):
            t = t * model.predict.weight[0, : t.shape[1]].detach().abs()
        parts.append(torch.nn.functional.normalize(t, dim=1))
    if not parts:
        raise ValueError(f"{type(model).__name__} has no item embedding")
    return torch.nn.functional.normalize(torch.cat(parts, dim=1), dim=1).cpu().numpy()


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


class Recommender:
    """A trained run ready to answer: ``for_users``, ``for_liked``, ``similar``, ``history``."""

    def __init__(self, run: Run, fold: FoldInConfig = FoldInConfig()) -> None:
        self.run = run
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
        if isinstance(self.model, HistoryModel):  # serve from everything each user watched
            self.model.set_history_from(history_for(run.split, "all"))

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
        self, user_idx: np.ndarray, k: int, *, exclude_seen: bool = True
    ) -> Recommendations:
        user_idx = np.asarray(user_idx, dtype=np.int64)
        scores = self.run.model.score_all(user_idx)
        return top_k(scores, k, self.seen[user_idx] if exclude_seen else None)

    def for_liked(self, item_idx: np.ndarray, k: int) -> Recommendations:
        """Cold start from movies a person likes, most important first."""
        given = np.asarray(item_idx, dtype=np.int64)
        liked = given[np.sort(np.unique(given, return_index=True)[1])]  # first mention kept
        if isinstance(self.model, HistoryModel):  # the liked list is the history: one pass
            scores = self.model.score_items_for_history(torch.as_tensor(liked)[None, :])
            scores = scores.float().cpu().numpy()
        else:
            with torch.inference_mode(False):
                rows = fold_in(self.model, liked, self.fold)
            scores = score_folded(self.model, rows)[None, :]
        excluded = sp.csr_matrix(
            (np.ones(liked.size), (np.zeros(liked.size, dtype=np.int64), liked)),
            shape=(1, len(self.items)),
        )
        return top_k(scores, k, excluded)

    def similar(self, item_idx: int, k: int) -> Recommendations:
        if self._item_vectors is None:
            self._item_vectors = item_vectors(self.model)
        v = self._item_vectors
        scores = (v @ v[item_idx])[None, :]
        return top_k(scores, k, sp.csr_matrix(([1.0], ([0], [item_idx])), shape=(1, len(v))))

    def history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        return self.timeline.of(user_idx)

    def find_movie(self, query: str | int, limit: int = 10) -> MovieMatch:
        return self.titles.find(query, limit)

    def search(self, q: str, limit: int) -> np.ndarray:
        return self.titles.search(q, limit)


Block = tuple[np.ndarray, np.ndarray, np.ndarray]  # raw user ids, raw movie ids (B, k), scores


def batch_blocks(r: Recommender, k: int, chunk: int = 2048) -> Iterator[Block]:
    """Every user's top-k unseen movies over the full catalogue, ``chunk`` users at a time,
    in raw ids (-1 where a user has fewer than k unseen movies)."""
    for start in range(0, len(r.users), chunk):
        users = np.arange(start, min(start + chunk, len(r.users)))
        rec = r.for_users(users, k)
        movies = np.where(rec.items >= 0, r.items.raw[np.maximum(rec.items, 0)], -1)
        yield r.users.raw[users], movies, rec.scores


def write_parquet(path: str | Path, blocks: Iterable[Block]) -> Iterator[Block]:
    """Pass ``blocks`` through, writing them as rows (user_id, rank, movie_id, score) to a
    Parquet file that appears (atomically renamed) only once every block was written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("rank", pa.int16()),
            ("movie_id", pa.int64()),
            ("score", pa.float32()),
        ]
    )
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for users, movies, scores in blocks:
                keep = movies >= 0
                rank = np.broadcast_to(np.arange(1, movies.shape[1] + 1), movies.shape)
                writer.write_table(
                    pa.table(
                        {
                            "user_id": np.repeat(users, keep.sum(axis=1)),
                            "rank": rank[keep].astype(np.int16),
                            "movie_id": movies[keep],
                            "score": scores[keep].astype(np.float32),
                        },
                        schema=schema,
                    )
                )
                yield users, movies, scores
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
