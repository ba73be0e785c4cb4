"""Typed arrays that flow between pipeline stages. No I/O here.

Raw MovieLens ids live only in ``IdMap``; everything else uses contiguous int32 indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class IdMap:
    """Raw id <-> contiguous index. ``raw`` is sorted ascending and unique; index i is raw[i]."""

    raw: np.ndarray  # int64, sorted, unique

    def __post_init__(self) -> None:
        raw = np.asarray(self.raw, dtype=np.int64)
        if raw.ndim != 1 or (raw.size > 1 and not np.all(raw[1:] > raw[:-1])):
            raise ValueError("IdMap.raw must be a 1-D strictly increasing array of ids")
        object.__setattr__(self, "raw", raw)

    @classmethod
    def from_values(cls, values: np.ndarray) -> IdMap:
        v = np.sort(np.asarray(values, dtype=np.int64))  # np.unique is far slower at 25M rows
        return cls(v[np.concatenate(([True], v[1:] != v[:-1]))] if v.size else v)

    def __len__(self) -> int:
        return int(self.raw.size)

    def index(self, raw_ids: np.ndarray | int) -> np.ndarray:
        """Indices of ``raw_ids``; -1 where an id is unknown."""
        q = np.atleast_1d(np.asarray(raw_ids, dtype=np.int64))
        if not len(self):
            return np.full(q.shape, -1, dtype=np.int32)
        pos = np.minimum(np.searchsorted(self.raw, q), len(self) - 1)
        return np.where(self.raw[pos] == q, pos, -1).astype(np.int32)

    def to_raw(self, indices: np.ndarray | int) -> np.ndarray:
        return self.raw[np.asarray(indices)]

    def __contains__(self, raw_id: int) -> bool:
        return bool(self.index(raw_id)[0] >= 0)


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays, one row per (user, item) event. Indices refer to IdMaps kept elsewhere."""

    users: np.ndarray  # int32
    items: np.ndarray  # int32
    timestamps: np.ndarray  # int64, seconds since epoch
    ratings: np.ndarray  # float32 (1.0 for purely implicit data)
    n_users: int
    n_items: int

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "timestamps", "ratings"):
            if len(getattr(self, name)) != n:
                got = len(getattr(self, name))
                raise ValueError(f"Interactions.{name} has length {got}, expected {n}")

    def __len__(self) -> int:
        return int(self.users.size)

    def subset(self, rows: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or an index array; index spaces unchanged."""
        return Interactions(
            self.users[rows],
            self.items[rows],
            self.timestamps[rows],
            self.ratings[rows],
            self.n_users,
            self.n_items,
        )

    def to_csr(self) -> sp.csr_matrix:
        """Binary user x item matrix (duplicates collapse to 1), float32, sorted indices."""
        m = sp.csr_matrix(
            (np.ones(len(self), dtype=np.float32), (self.users, self.items)),
            shape=(self.n_users, self.n_items),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        m.sort_indices()
        return m

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    def user_counts(self) -> np.ndarray:
        return np.bincount(self.users, minlength=self.n_users)


@dataclass(frozen=True)
class Catalog:
    """Movie metadata aligned with the item index: row i describes item index i.

    ``imdb_ids`` / ``tmdb_ids``: the movie's IMDb number (``tt0114709`` is 114709) and TMDB
    id, -1 where unknown; omitted, every one is unknown.
    """

    movie_ids: np.ndarray  # int64 raw MovieLens ids
    titles: np.ndarray  # object array of str, title without the "(year)" suffix
    years: np.ndarray  # int16, 0 where the title carries no year
    genres: np.ndarray  # object array of str, "Action|Comedy" ("" when none listed)
    imdb_ids: np.ndarray = None  # type: ignore[assignment]  # int64, -1 where unknown
    tmdb_ids: np.ndarray = None  # type: ignore[assignment]  # int64, -1 where unknown

    def __post_init__(self) -> None:
        for name in ("imdb_ids", "tmdb_ids"):
            value = getattr(self, name)
            ids = np.full(len(self), -1) if value is None else value
            ids = np.asarray(ids, dtype=np.int64)
            if ids.shape != (len(self),):
                raise ValueError(f"Catalog.{name} must hold one id per movie")
            object.__setattr__(self, name, ids)

    def __len__(self) -> int:
        return int(self.movie_ids.size)

    def subset(self, rows: np.ndarray) -> Catalog:
        return Catalog(
            self.movie_ids[rows],
            self.titles[rows],
            self.years[rows],
            self.genres[rows],
            self.imdb_ids[rows],
            self.tmdb_ids[rows],
        )

    def display_title(self, i: int) -> str:
        y = int(self.years[i])
        return f"{self.titles[i]} ({y})" if y else str(self.titles[i])


@dataclass(frozen=True)
class Dataset:
    """Everything loaded from one MovieLens release, in index space.

    ``catalog`` row i and ``items.raw[i]`` describe the same movie.
    """

    interactions: Interactions
    users: IdMap
    items: IdMap
    catalog: Catalog
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.catalog) != len(self.items) or not np.array_equal(
            self.catalog.movie_ids, self.items.raw
        ):
            raise ValueError("Dataset.catalog must be aligned with Dataset.items")
        if self.interactions.n_users != len(self.users) or self.interactions.n_items != len(
            self.items
        ):
            raise ValueError("Dataset.interactions index spaces must match the id maps")
