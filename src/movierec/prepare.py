"""Turn ratings into implicit feedback: filter, then re-encode to contiguous indices.

Policy, applied in this order:

1. ``min_rating``: ratings below it are dropped (default: every rating counts as watched).
2. ``min_year``: movies released before it are dropped; movies whose title carries no
   year are kept only when no year filter is set (and counted apart otherwise).
3. ``min_user_interactions`` (default 3): users left with fewer interactions are dropped.
   Leave-last-out needs at least three per user: one to train on, one for validation, one
   for test. This is a single pass: dropping users never drops a movie below a threshold
   because movies have none.

Users and movies left without any interaction disappear; the result is re-encoded so
``n_users`` and ``n_items`` are exact, with the catalogue cut to the movies kept. When
nothing is dropped the input comes back as it is (no copy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from movierec.data import Dataset, IdMap, Interactions


@dataclass(frozen=True)
class FilterStep:
    """What one filter removed. Users and movies count those left with no interaction."""

    reason: str
    interactions: int
    users: int
    movies: int


@dataclass(frozen=True)
class PrepareReport:
    users_in: int
    movies_in: int
    interactions_in: int
    users: int  # kept
    movies: int  # kept
    interactions: int  # kept
    steps: tuple[FilterStep, ...]  # the filters that ran, in order

    @property
    def dropped(self) -> dict[str, int]:
        """Interactions dropped, by reason."""
        return {s.reason: s.interactions for s in self.steps}

    def lines(self) -> list[str]:
        out = [
            f"kept: {self.interactions:,} of {self.interactions_in:,} interactions, "
            f"{self.users:,} of {self.users_in:,} users, "
            f"{self.movies:,} of {self.movies_in:,} movies"
        ]
        out += [
            f"dropped {s.interactions:,} interactions ({s.users:,} users, {s.movies:,} movies): "
            f"{s.reason}"
            for s in self.steps
        ]
        return out


def prepare(
    ds: Dataset,
    *,
    min_year: int | None = None,
    min_rating: float | None = None,
    min_user_interactions: int = 3,
) -> tuple[Dataset, PrepareReport]:
    """Filter ``ds`` to implicit feedback by the policy in the module docstring."""
    if min_user_interactions < 1:
        raise ValueError(f"min_user_interactions must be at least 1, got {min_user_interactions}")
    x = ds.interactions
    kept = _Kept(x)
    if min_rating is not None:
        kept.drop(f"rating below {min_rating:g}", x.ratings >= min_rating)
    if min_year is not None:
        years = ds.catalog.years.astype(np.int32)
        kept.drop("movie without a year", (years != 0)[x.items])
        kept.drop(f"movie released before {min_year}", (years >= min_year)[x.items])
    counts = np.bincount(x.users[kept.rows], minlength=x.n_users)
    kept.drop(
        f"user with fewer than {min_user_interactions} interactions",
        (counts >= min_user_interactions)[x.users],
    )

    whole = kept.n_rows == len(x) and kept.users == x.n_users and kept.movies == x.n_items
    out = ds if whole else _reencode(ds, kept.rows)
    report = PrepareReport(
        users_in=len(ds.users),
        movies_in=len(ds.items),
        interactions_in=len(x),
        users=len(out.users),
        movies=len(out.items),
        interactions=len(out.interactions),
        steps=tuple(kept.steps),
    )
    return out, report


class _Kept:
    """The rows still kept and how many users and movies they cover; each drop is recorded."""

    def __init__(self, x: Interactions) -> None:
        self.x = x
        self.rows = np.ones(len(x), dtype=bool)
        self.n_rows = len(x)
        self.users = int(np.count_nonzero(np.bincount(x.users, minlength=x.n_users)))
        self.movies = int(np.count_nonzero(np.bincount(x.items, minlength=x.n_items)))
        self.steps: list[FilterStep] = []

    def drop(self, reason: str, keep: np.ndarray) -> None:
        """Keep only rows where ``keep`` holds too; record what that removed, if anything."""
        after = self.rows & keep
        n_rows = int(np.count_nonzero(after))
        if n_rows == self.n_rows:
            return
        users = _distinct(self.x.users[after], self.x.n_users)
        movies = _distinct(self.x.items[after], self.x.n_items)
        step = FilterStep(reason, self.n_rows - n_rows, self.users - users, self.movies - movies)
        self.steps.append(step)
        self.rows, self.n_rows, self.users, self.movies = after, n_rows, users, movies


def _distinct(indices: np.ndarray, n: int) -> int:
    return int(np.count_nonzero(np.bincount(indices, minlength=n)))


def _reencode(ds: Dataset, keep: np.ndarray) -> Dataset:
    """Rows ``keep`` of ``ds`` with users and movies renumbered 0..n-1 in raw-id order."""
    x = ds.interactions
    users, items = x.users[keep], x.items[keep]
    user_used = np.bincount(users, minlength=x.n_users) > 0
    item_used = np.bincount(items, minlength=x.n_items) > 0
    user_index = (np.cumsum(user_used) - 1).astype(np.int32)
    item_index = (np.cumsum(item_used) - 1).astype(np.int32)
    interactions = Interactions(
        user_index[users],
        item_index[items],
        x.timestamps[keep],
        x.ratings[keep],
        n_users=int(user_used.sum()),
        n_items=int(item_used.sum()),
    )
    return Dataset(
        interactions,
        IdMap(ds.users.raw[user_used]),
        IdMap(ds.items.raw[item_used]),
        ds.catalog.subset(item_used),
        name=ds.name,
    )
