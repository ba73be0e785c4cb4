"""Ranking metrics as pure functions of ranks. Nothing here ever sees a model.

Every user has exactly one relevant item (leave-last-out), so HR@K and NDCG@K are
functions of that item's *rank*: the number of competing items scored at least as high as
the target (rank 0 = top of the list). Ties therefore count against the target.

A tie is not evidence either way, so the metrics can also take ``ties`` (how many of those
competitors score exactly the same as the target) and then return their expectation over
a uniformly random order among the tied items: the target's position is uniform over
``rank - ties, ..., rank``. A constant model then scores HR@10 = 10/100 = 0.10 exactly with
99 candidates (pessimistic ranks alone would give it 0.0; the tutorial's "target last,
argsort" gave it 1.0).
"""

from __future__ import annotations

import numpy as np


def rank_of_target(target_scores: np.ndarray, other_scores: np.ndarray) -> np.ndarray:
    """Number of competitors scored at least as high as the target, per row.

    ``target_scores`` has shape (B,), ``other_scores`` (B, C); returns int64 (B,).
    NaN on either side counts against the target: a competitor is "at least as good"
    unless it is strictly below the target.
    """
    target, others = _pair(target_scores, other_scores)
    below = np.count_nonzero(others < target[:, None], axis=1)
    return (others.shape[1] - below).astype(np.int64)


def ties_of_target(target_scores: np.ndarray, other_scores: np.ndarray) -> np.ndarray:
    """Number of competitors scored exactly the same as the target, per row (int64 (B,))."""
    target, others = _pair(target_scores, other_scores)
    return np.count_nonzero(others == target[:, None], axis=1).astype(np.int64)


def hits(ranks: np.ndarray, k: int, ties: np.ndarray | None = None) -> np.ndarray:
    """Per user, 1.0 if the target ranks in the top K, else 0.0 (float64 (B,)); with
    ``ties``, its expectation under a random order among tied items."""
    worst, best = _positions(ranks, k, ties)
    inside = np.minimum(worst + 1, k) - np.minimum(best, k)  # positions < k among best..worst
    return inside / (worst - best + 1)


def gains(ranks: np.ndarray, k: int, ties: np.ndarray | None = None) -> np.ndarray:
    """Per user, 1 / log2(rank + 2) if rank < K, else 0.0 (float64 (B,)); with ``ties``,
    its expectation under a random order among tied items."""
    worst, best = _positions(ranks, k, ties)
    # cumulative gain table: cum[j] = sum of 1/log2(r + 2) for r < j, flat beyond k
    cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k, dtype=np.float64) + 2))])
    return (cum[np.minimum(worst + 1, k)] - cum[np.minimum(best, k)]) / (worst - best + 1)


def hit_rate(ranks: np.ndarray, k: int, ties: np.ndarray | None = None) -> float:
    """HR@K: fraction of users whose target ranks in the top K (rank < K); 0.0 when empty.

    With ``ties``, the expected HR@K under a random order among tied items.
    """
    h = hits(ranks, k, ties)
    return float(h.mean()) if h.size else 0.0


def ndcg(ranks: np.ndarray, k: int, ties: np.ndarray | None = None) -> float:
    """NDCG@K with one relevant item per user: mean of 1 / log2(rank + 2) where rank < K.

    With ``ties``, the expected NDCG@K under a random order among tied items.
    """
    g = gains(ranks, k, ties)
    return float(g.mean()) if g.size else 0.0


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, rounds: int = 2000
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over users and its 95% percentile interval, resampling users with
    replacement ``rounds`` times: ``(difference, low, high)``. ``a`` and ``b`` hold one
    figure per user (the same users, in the same order), e.g. from ``hits`` or ``gains``."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"a and b must be 1-D, of equal non-zero length; got {d.shape}")
    means = np.empty(rounds)
    for r in range(0, rounds, 256):  # 256 resamples at a time bound the memory
        n = min(256, rounds - r)
        means[r : r + n] = d[rng.integers(0, d.size, size=(n, d.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(low), float(high)


def coverage(topk_items: np.ndarray, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one top-K list.

    ``topk_items`` is an int array of any shape (typically (U, K)); entries of -1 (padding
    for "fewer than K left") are ignored.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    items = np.asarray(topk_items).ravel()
    items = items[items >= 0]
    if items.size and items.max() >= n_items:
        raise ValueError(f"item index {int(items.max())} is outside a catalogue of {n_items}")
    return float(np.count_nonzero(np.bincount(items, minlength=n_items)) / n_items)


def _pair(target_scores: np.ndarray, other_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(target_scores)
    others = np.asarray(other_scores)
    if others.ndim != 2 or target.shape != others.shape[:1]:
        raise ValueError(
            f"target_scores must be (B,) and other_scores (B, C); got {target.shape} "
            f"and {others.shape}"
        )
    return target, others


def _positions(ranks: np.ndarray, k: int, ties: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(worst, best) possible 0-based positions of each target, validated."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    worst = np.asarray(ranks)
    if worst.ndim != 1:
        raise ValueError(f"ranks must be a 1-D array, got shape {worst.shape}")
    worst = worst.astype(np.int64)
    if worst.size and worst.min() < 0:
        raise ValueError("ranks must be non-negative (0 = top of the list)")
    if ties is None:
        return worst, worst
    t = np.asarray(ties).astype(np.int64)
    if t.shape != worst.shape:
        raise ValueError(f"ties must have the shape of ranks {worst.shape}, got {t.shape}")
    if t.size and (t.min() < 0 or np.any(t > worst)):
        raise ValueError("ties must satisfy 0 <= ties <= ranks (tied items are in the rank)")
    return worst, worst - t
