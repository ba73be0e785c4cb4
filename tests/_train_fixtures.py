"""Tiny data with planted structure for the model, training and artifact tests.

Users fall into groups; each group consumes most of its own block of items and nothing
else. A model that learns the blocks ranks a user's held-out item (always in the user's
block) above nearly all of the 99 sampled candidates (mostly from other blocks): sampled
HR@10 close to 1.0, where a constant model scores 0.10.
"""

from __future__ import annotations

import numpy as np

from movierec.data import Catalog, Dataset, IdMap, Interactions
from movierec.split import Split, leave_last_out
from movierec.train import TrainConfig

GROUPS = 4
USERS_PER_GROUP = 25
ITEMS_PER_GROUP = 40
PER_USER = 30  # items each user consumes from its block (28 train, 1 validation, 1 test)


def planted_interactions(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    n_users, n_items = GROUPS * USERS_PER_GROUP, GROUPS * ITEMS_PER_GROUP
    users = np.repeat(np.arange(n_users, dtype=np.int32), PER_USER)
    group = users % GROUPS
    offsets = np.concatenate(
        [rng.choice(ITEMS_PER_GROUP, PER_USER, replace=False) for _ in range(n_users)]
    )
    items = (group * ITEMS_PER_GROUP + offsets).astype(np.int32)
    timestamps = 1_500_000_000 + rng.permutation(users.size).astype(np.int64) * 60
    ratings = np.full(users.size, 4.0, dtype=np.float32)
    return Interactions(users, items, timestamps, ratings, n_users, n_items)


def planted_split(seed: int = 0) -> Split:
    return leave_last_out(planted_interactions(seed))


def planted_dataset(seed: int = 0) -> Dataset:
    """The planted interactions with raw ids and a catalogue, as a loader would give them."""
    inter = planted_interactions(seed)
    movie_ids = np.arange(inter.n_items, dtype=np.int64) * 10 + 1
    catalog = Catalog(
        movie_ids=movie_ids,
        titles=np.array([f"Movie {i}" for i in movie_ids], dtype=object),
        years=np.full(inter.n_items, 2012, dtype=np.int16),
        genres=np.array(["Drama|Comedy" if i % 2 else "" for i in movie_ids], dtype=object),
    )
    users = IdMap(np.arange(inter.n_users, dtype=np.int64) + 1000)
    return Dataset(inter, users, IdMap(movie_ids), catalog, name="planted")


# Settings under which every model learns the planted blocks within a few seconds on CPU.
FAST: dict[str, dict] = {
    "tutorial": dict(epochs=5, batch_size=256, lr=2e-2),
    "gmf": dict(factors=8, epochs=4, batch_size=512, lr=5e-2),
    "mlp": dict(factors=8, layers=(16, 8), init_std=0.3, epochs=5, batch_size=256, lr=2e-2),
    "neumf": dict(factors=8, mlp_factors=8, layers=(16, 8), epochs=4, batch_size=512, lr=2e-2),
}


def fast_config(model: str, **overrides) -> TrainConfig:
    return TrainConfig.for_model(model, **{**FAST[model], "device": "cpu", **overrides})
