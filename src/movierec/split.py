"""Leave-last-out split by timestamp: train / validation / test.

Per user, interactions are ordered by (timestamp, item index); ties on the timestamp are
broken by item index, which follows the raw movie id, so the split never depends on file
order. A user with at least three interactions gives the last one to test and the one
before it to validation; the rest is training. A user with one or two interactions keeps
them all in training (``prepare`` drops such users by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from movierec.data import Interactions

MIN_INTERACTIONS_FOR_HOLDOUT = 3


@dataclass(frozen=True)
class Split:
    train: Interactions
    validation: Interactions  # one row per held-out user, sorted by user
    test: Interactions  # same users as validation, same order

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def all(self) -> Interactions:
        return concat(self.train, self.validation, self.test)

    def seen_before_test(self) -> sp.csr_matrix:
        """Items each user interacted with in train and validation: excluded when ranking test."""
        return concat(self.train, self.validation).to_csr()

    def seen_anywhere(self) -> sp.csr_matrix:
        """Items each user interacted with in any part: never sampled as a negative."""
        return self.all().to_csr()


def concat(*parts: Interactions) -> Interactions:
    first = parts[0]
    return Interactions(
        np.concatenate([p.users for p in parts]),
        np.concatenate([p.items for p in parts]),
        np.concatenate([p.timestamps for p in parts]),
        np.concatenate([p.ratings for p in parts]),
        first.n_users,
        first.n_items,
    )


def chronological_order(inter: Interactions) -> np.ndarray:
    """Row order sorted by user, then timestamp, then item index."""
    return np.lexsort((inter.items, inter.timestamps, inter.users))


def leave_last_out(inter: Interactions) -> Split:
    order = chronological_order(inter)
    users = inter.users[order]
    counts = np.bincount(users, minlength=inter.n_users)
    group_end = np.cumsum(counts)[users]  # one past the last sorted position of each row's user
    from_end = group_end - 1 - np.arange(users.size)  # 0 = latest interaction of its user
    held_out = counts[users] >= MIN_INTERACTIONS_FOR_HOLDOUT
    test_rows = order[held_out & (from_end == 0)]
    val_rows = order[held_out & (from_end == 1)]
    train_rows = order[~held_out | (from_end >= 2)]
    return Split(inter.subset(train_rows), inter.subset(val_rows), inter.subset(test_rows))
