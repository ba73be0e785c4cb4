"""Index space, raw ids and loaded metadata -> the JSON the API answers with.

Movie objects come from ``display.MovieRows`` (the same objects the CLI prints); this adds
what only the service needs: ``because`` lists of store rows, raw ids looked up once, store
rows for movies the model does not know, the genre list, and run or store metadata made
plain, local paths cut to their last component.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

import numpy as np

from movierec import display
from movierec.data import Catalog
from movierec.store import Store
from movierec.topk import Recommendations

if TYPE_CHECKING:
    from movierec.recommend import Recommender


StoreRow = tuple[int, float, tuple[int, ...]]  # movie id, score, because (raw movie ids)


class Shaper(display.MovieRows):
    """The service's only reader of the catalogue: ``MovieRows`` by item index, plus store
    rows by raw movie id."""

    def __init__(self, recommender: Recommender, store: Store | None) -> None:
        super().__init__(recommender.catalog)
        self.items = recommender.items
        self.store = store
        self._index: dict[int, int] = {}  # raw movie id -> item index (-1: unknown)

    def index_of(self, movie_id: int) -> int:
        idx = self._index.get(movie_id)
        if idx is None:
            idx = self._index[movie_id] = int(self.items.index(movie_id)[0])
        return idx

    def recommended(self, recs: Recommendations, row: int = 0) -> list[dict[str, Any]]:
        """Row ``row`` of ``recs``, each movie with its ``because`` (empty when not given)."""
        if recs.because is None:
            return [{**m, "because": []} for m in self.scored(recs.items[row], recs.scores[row])]
        return self.scored(recs.items[row], recs.scores[row], recs.because[row])

    def stored(self, rows: list[StoreRow]) -> list[dict[str, Any]]:
        """Store rows. Movies the model does not know come from the store's own movies
        table; movies neither knows are dropped (from ``because`` too)."""
        wanted = {m for movie_id, _, because in rows for m in (movie_id, *because)}
        missing = [m for m in wanted if self.index_of(m) < 0]
        extra = self.store.movies(missing) if missing and self.store is not None else {}

        def movie(movie_id: int) -> dict[str, Any] | None:
            i = self.index_of(movie_id)
            if i >= 0:
                return self.movie(i)
            if movie_id not in extra:
                return None
            title, year, genres = extra[movie_id]
            return display.movie(movie_id, title, year or 0, genres)  # no links known

        out = []
        for movie_id, score, because in rows:
            found = movie(movie_id)
            if found is not None:
                reasons = [display.reason(m) for m in map(movie, because) if m is not None]
                out.append({**found, "score": display.finite(score), "because": reasons})
        return out


def genre_counts(catalog: Catalog) -> dict[str, int]:
    """Every genre of ``catalog`` (by name) and how many of its movies have it."""
    counts: dict[str, int] = {}
    for genres in catalog.genres:
        for g in set(str(genres).split("|")) - {"", display.NO_GENRES}:
            counts[g] = counts.get(g, 0) + 1
    return dict(sorted(counts.items()))


def jsonable(value: Any) -> Any:
    """numpy values, NaN/inf (-> null) and other odd values -> plain JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_LOCAL_PATH = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\)")


def without_local_paths(value: Any) -> Any:
    """JSON with every absolute local path (``/srv/runs/x``, ``~/x``, ``C:\\x``) cut to
    its last component: the API says what was loaded, not where this machine keeps it."""
    if isinstance(value, dict):
        return {k: without_local_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_local_paths(v) for v in value]
    if isinstance(value, str) and _LOCAL_PATH.match(value):
        return PureWindowsPath(value).name if "\\" in value else PurePosixPath(value).name
    return value


def model_answer(recommender: Recommender) -> dict[str, Any]:
    """``/v1/model``'s fields about the model, read once: the run directory may move or
    vanish while serving."""
    info = without_local_paths(jsonable(dict(getattr(recommender, "info", {}) or {})))
    metrics = info.get("metrics")
    return {
        "model": str_or_none(info.get("model", info.get("name"))),
        "trained_at": str_or_none(
            info.get("trained_at", info.get("training_date", info.get("created_at")))
        ),
        "metrics": metrics if isinstance(metrics, dict) else {},
        "users": len(recommender.users),
        "movies": len(recommender.items),
        "info": info,
    }


def store_answer(store: Store) -> dict[str, Any]:
    """``/v1/model``'s fields about the store now serving."""
    meta = without_local_paths(jsonable(store.meta))
    users = meta.get("users")
    return {
        "path": store.path.name,
        "created_at": str_or_none(meta.get("created_at")),
        "run_id": str_or_none(meta.get("run_id", meta.get("run"))),
        "k": store.k,
        "users": users if isinstance(users, int) else None,
        "meta": meta,
    }
