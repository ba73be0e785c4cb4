"""Small synthetic splits and scorers with known answers, shared by the evaluation tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from movierec.data import Interactions
from movierec.split import Split, leave_last_out

BLOCK = 20  # items per planted block


def interactions(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Interactions:
    """Interactions in the given order, timestamps 0, 1, 2, ... (later rows are later)."""
    n = len(users)
    return Interactions(
        np.asarray(users, dtype=np.int32),
        np.asarray(items, dtype=np.int32),
        np.arange(n, dtype=np.int64),
        np.ones(n, dtype=np.float32),
        n_users,
        n_items,
    )


def planted_split(
    seed: int = 0, groups: int = 6, users_per_group: int = 20, per_user: int = 12
) -> tuple[Split, np.ndarray]:
    """``groups`` user groups, each consuming ``per_user`` random items of its own 20-item
    block (group g: items 20g .. 20g + 19). Returns the leave-last-out split and each
    user's group. Every block is equally popular, so only personalisation helps, and with
    6 groups every user has 108 unseen items, 8 of them in their own block besides the
    target: a model that finds the blocks puts the target in the top 10 of either protocol.
    """
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(groups), users_per_group)
    own = np.argsort(rng.random((group.size, BLOCK)), axis=1)[:, :per_user]
    items = (group[:, None] * BLOCK + own).ravel()
    users = np.repeat(np.arange(group.size), per_user)
    split = leave_last_out(interactions(users, items, group.size, groups * BLOCK))
    return split, group


def random_split(seed: int = 0, n_users: int = 40, n_items: int = 300, per_user: int = 15) -> Split:
    """Uniformly random interactions, distinct per user; every user is held out."""
    rng = np.random.default_rng(seed)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    users = np.repeat(np.arange(n_users), per_user)
    return leave_last_out(interactions(users, items, n_users, n_items))


@dataclass(frozen=True)
class TableScorer:
    """Scores looked up in a dense (n_users, n_items) table."""

    table: np.ndarray

    @property
    def n_users(self) -> int:
        return int(self.table.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.table.shape[1])

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(users)[:, None], np.asarray(items)].astype(np.float32)

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(users)].astype(np.float32)


def constant_scorer(n_users: int, n_items: int, value: float = 0.5) -> TableScorer:
    return TableScorer(np.full((n_users, n_items), value, dtype=np.float32))


def oracle_scorer(split: Split, part: str = "test") -> TableScorer:
    """1.0 for each held-out user's target in ``part``, 0.0 elsewhere."""
    held = split.test if part == "test" else split.validation
    table = np.zeros((split.n_users, split.n_items), dtype=np.float32)
    table[held.users, held.items] = 1.0
    return TableScorer(table)


def random_scorer(n_users: int, n_items: int, seed: int = 0, levels: int = 0) -> TableScorer:
    """Gaussian scores; with ``levels`` > 0, rounded onto that many values (plenty of ties)."""
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((n_users, n_items)).astype(np.float32)
    if levels:
        table = np.floor(table * levels / 4).astype(np.float32)
    return TableScorer(table)
