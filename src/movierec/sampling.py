"""Vectorised negative sampling, verified against everything a user has seen.

A user's seen set is a binary CSR matrix (users x items). Membership is tested in bulk
against the sorted int64 keys ``user * n_items + item``, which a CSR matrix with sorted
indices yields already in order. Every random function takes a ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

EVAL_CANDIDATES = 99
SAMPLE_CHUNK = 1 << 22  # negatives drawn per chunk: ~100 MB of int64 temporaries, not GBs


def seen_keys(seen: sp.csr_matrix) -> np.ndarray:
    """Sorted int64 keys ``user * n_items + item`` of every nonzero of ``seen``."""
    csr = seen.tocsr()
    if not csr.has_sorted_indices:
        csr = csr.sorted_indices()
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return rows * csr.shape[1] + csr.indices.astype(np.int64)


def is_seen(keys: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean array, True where (users, items) is among ``keys`` (broadcasting)."""
    q = np.asarray(users, dtype=np.int64) * n_items + np.asarray(items, dtype=np.int64)
    if keys.size == 0:
        return np.zeros(q.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, q), keys.size - 1)
    return keys[pos] == q


def _check_room(seen: sp.csr_matrix, users: np.ndarray, needed: int) -> None:
    room = seen.shape[1] - np.diff(seen.indptr)[users]  # users may repeat
    if users.size and room.min() < needed:
        u = int(users[np.argmin(room)])
        raise ValueError(
            f"user index {u} has only {int(room.min())} unseen items; {needed} are needed"
        )


def sample_negatives(
    seen: sp.csr_matrix,
    users: np.ndarray,
    n_per_user: int,
    rng: np.random.Generator,
    *,
    keys: np.ndarray | None = None,
) -> np.ndarray:
    """Uniform unseen items, ``n_per_user`` for each entry of ``users`` (repeats allowed).

    Returns an int32 array of shape ``(len(users), n_per_user)``. Pass ``keys`` (from
    ``seen_keys``) to skip recomputing them on every epoch.
    """
    users = np.asarray(users, dtype=np.int64)
    n_items = seen.shape[1]
    _check_room(seen, users, 1)
    keys = seen_keys(seen) if keys is None else keys
    out = np.empty((users.size, n_per_user), dtype=np.int32)
    step = max(1, SAMPLE_CHUNK // max(n_per_user, 1))
    for s in range(0, users.size, step):  # chunks bound the int64 temporaries
        u = users[s : s + step]
        block = rng.integers(0, n_items, size=(u.size, n_per_user), dtype=np.int64)
        bad = np.flatnonzero(is_seen(keys, u[:, None], block, n_items).ravel())
        while bad.size:
            row_users = u[bad // n_per_user]
            redraw = rng.integers(0, n_items, size=bad.size, dtype=np.int64)
            block.ravel()[bad] = redraw
            bad = bad[is_seen(keys, row_users, redraw, n_items)]
        out[s : s + step] = block
    return out


def sample_candidates(
    seen: sp.csr_matrix,
    users: np.ndarray,
    rng: np.random.Generator,
    n: int = EVAL_CANDIDATES,
    *,
    keys: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` distinct unseen items per user, a uniform random subset: shape ``(len(users), n)``.

    Draws a surplus with replacement, discards seen items and repeats, then keeps ``n``
    of the remaining distinct items at random; rows that came up short are drawn again.
    """
    users = np.asarray(users, dtype=np.int64)
    n_items = seen.shape[1]
    _check_room(seen, users, n)
    keys = seen_keys(seen) if keys is None else keys
    out = np.empty((users.size, n), dtype=np.int32)
    todo = np.arange(users.size)
    surplus = 1.05
    while todo.size:
        u = users[todo]
        room = n_items - np.diff(seen.indptr)[u]
        draws = int(np.ceil(n * surplus * n_items / max(int(room.min()), 1))) + 8
        draws = min(draws, 64 * n_items)
        cand = np.sort(rng.integers(0, n_items, size=(todo.size, draws), dtype=np.int64), axis=1)
        ok = ~is_seen(keys, u[:, None], cand, n_items)
        ok[:, 1:] &= cand[:, 1:] != cand[:, :-1]  # first of each run of equal items only
        # random priority for valid draws; invalid ones sort last
        prio = np.where(ok, rng.random(cand.shape), 2.0)
        pick = np.argpartition(prio, n - 1, axis=1)[:, :n]
        full = ok.sum(axis=1) >= n
        out[todo[full]] = np.take_along_axis(cand, pick, axis=1)[full]
        todo = todo[~full]
        surplus *= 2.0
    return out
