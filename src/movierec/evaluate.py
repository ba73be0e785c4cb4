"""Sampled and full-ranking evaluation of any ``Scorer`` on a leave-last-out split.

Two protocols, one rank per held-out user (see DESIGN.md, "The evaluation protocol"):

- sampled: the target ranked against 99 distinct items the user never interacted with
  (the same candidates for every model given the same seed);
- full: the target ranked against every item the user has not interacted with before the
  target (train for validation, train + validation for test), scored in user chunks so
  memory stays bounded.

Ties count against the target in the rank; metrics are the expectation over a random order
among tied items (``movierec.metrics``), so a constant model scores HR@10 = 0.10 sampled.

A scorer with a ``bounded_scorer()`` (the MLP towers on a CPU) is ranked in full from fast
approximate scores with a proven error bound; the items that bound cannot settle are
scored exactly, so every figure is that of exact scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

from movierec import fused, metrics
from movierec.sampling import EVAL_CANDIDATES, sample_candidates
from movierec.split import Split

K_LIST: tuple[int, ...] = (5, 10, 20)
COVERAGE_K = 10
PAIRED_K = 10  # the cut-off of the per-user figures kept for paired comparisons
SAMPLED_BATCH = 8192  # users scored per call in the sampled protocol
FULL_CHUNK_ELEMENTS = 1 << 24  # scores held per chunk in the full protocol (64 MiB float32)

Part = Literal["test", "validation"]


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores (user, item) pairs; higher is better."""

    n_users: int
    n_items: int

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """users (B,), items (B, C) -> float32 (B, C)."""
        ...

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """users (B,) -> float32 (B, n_items). A torch tensor is accepted too."""
        ...


class Approximate(Protocol):
    """What a scorer's optional ``bounded_scorer()`` returns per user block: approximate
    scores, each within ``err_users[u] + err_items[i]`` of the exact one. Full ranking
    then scores exactly only the items it cannot settle (``movierec.models.Bounded``)."""

    scores: np.ndarray  # (B, n_items) float32, writable
    err_users: np.ndarray  # (B,)
    err_items: np.ndarray  # (n_items,)


@dataclass(frozen=True)
class Holdout:
    """Everything one evaluation ranks: held-out users, their targets, sampled candidates,
    and the items excluded from full ranking (what each user saw before the target)."""

    part: Part
    users: np.ndarray  # int64 (U,), sorted
    targets: np.ndarray  # int64 (U,)
    candidates: np.ndarray  # int32 (U, 99), distinct, never seen anywhere
    seen: sp.csr_matrix  # (n_users, n_items) binary; excluded from full ranking


@dataclass(frozen=True)
class Metrics:
    """Both protocols' figures for one model on one part of the split."""

    sampled: dict[str, float]  # hr@K, ndcg@K for K in K_LIST, and "users"
    full: dict[str, float] | None  # same keys; None when full ranking was skipped
    coverage_at_10: float | None  # catalogue coverage of the full-ranking top-10 lists
    # per held-out user (in ``Holdout.users`` order): "sampled.hr@10", "sampled.ndcg@10",
    # "full.hr@10", "full.ndcg@10", for paired comparisons between models (not in to_dict)
    per_user: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict:
        out: dict = {"sampled": dict(self.sampled)}
        if self.full is not None:
            out["full"] = dict(self.full)
            out["coverage@10"] = self.coverage_at_10
        return out


def holdout(split: Split, *, part: Part = "test", seed: int = 0) -> Holdout:
    """Targets and candidates for ``part``. Candidates depend only on the split and ``seed``.

    Candidates avoid everything the user interacted with anywhere (so validation and test
    of one seed share them); full ranking on validation excludes only train, so it never
    sees test.
    """
    if part == "test":
        held, seen = split.test, split.seen_before_test()
    elif part == "validation":
        held, seen = split.validation, split.train.to_csr()
    else:
        raise ValueError(f"part must be 'test' or 'validation', got {part!r}")
    users = held.users.astype(np.int64)
    candidates = sample_candidates(split.seen_anywhere(), users, np.random.default_rng(seed))
    return Holdout(part, users, held.items.astype(np.int64), candidates, seen)


def evaluate_sampled(
    scorer: Scorer,
    users: np.ndarray,
    targets: np.ndarray,
    candidates: np.ndarray,
    k_list: tuple[int, ...] = K_LIST,
    batch: int = SAMPLED_BATCH,
) -> dict[str, float]:
    """Rank each target against its own row of ``candidates`` (U, C)."""
    return _summary(*sampled_ranks(scorer, users, targets, candidates, batch), k_list)


def sampled_ranks(
    scorer: Scorer,
    users: np.ndarray,
    targets: np.ndarray,
    candidates: np.ndarray,
    batch: int = SAMPLED_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """Each target's (rank, ties) among its own row of ``candidates`` (``metrics``)."""
    users, targets = _check_users_targets(users, targets)
    candidates = np.asarray(candidates)
    if candidates.ndim != 2 or candidates.shape[0] != users.size:
        raise ValueError(f"candidates must be (U, C) with U={users.size}, got {candidates.shape}")
    if np.any(candidates == targets[:, None]):
        raise ValueError("a user's candidates include their own target")
    ranks = np.empty(users.size, dtype=np.int64)
    ties = np.empty(users.size, dtype=np.int64)
    for start in range(0, users.size, batch):
        sl = slice(start, start + batch)
        items = np.concatenate([targets[sl, None], candidates[sl]], axis=1)
        s = _as_numpy(scorer.score(users[sl], items))
        if s.shape != items.shape:
            raise ValueError(f"score() returned shape {s.shape}, expected {items.shape}")
        ranks[sl] = metrics.rank_of_target(s[:, 0], s[:, 1:])
        ties[sl] = metrics.ties_of_target(s[:, 0], s[:, 1:])
    return ranks, ties


def evaluate_full(
    scorer: Scorer,
    users: np.ndarray,
    targets: np.ndarray,
    seen: sp.csr_matrix,
    k_list: tuple[int, ...] = K_LIST,
    batch: int | None = None,
) -> dict[str, float]:
    """Rank each target against every item its user has not seen; add top-10 coverage.

    ``seen`` is a (n_users, n_items) sparse matrix; its nonzeros in a user's row are scored
    -inf (the target itself is always kept). Users are scored ``batch`` at a time (default:
    about 16M scores per chunk) into one reused buffer, so memory stays bounded; results
    do not depend on ``batch``. The scorer's own arrays are never modified.
    """
    ranks, ties, cov = full_ranks(scorer, users, targets, seen, batch)
    out = _summary(ranks, ties, k_list)
    out[f"coverage@{COVERAGE_K}"] = cov
    return out


def full_ranks(
    scorer: Scorer,
    users: np.ndarray,
    targets: np.ndarray,
    seen: sp.csr_matrix,
    batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Each target's (rank, ties) among the items its user has not seen, and the top-10
    lists' catalogue coverage (see ``evaluate_full``)."""
    users, targets = _check_users_targets(users, targets)
    seen = sp.csr_matrix(seen)
    n_items = scorer.n_items
    if seen.shape[1] != n_items:
        raise ValueError(f"seen has {seen.shape[1]} columns, the scorer {n_items} items")
    if batch is None:
        batch = max(1, FULL_CHUNK_ELEMENTS // max(n_items, 1))
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    batch = min(batch, max(users.size, 1))
    ranks = np.empty(users.size, dtype=np.int64)
    ties = np.empty(users.size, dtype=np.int64)
    in_top = np.zeros(n_items, dtype=bool)
    kc = min(COVERAGE_K, n_items)
    make = getattr(scorer, "bounded_scorer", None)
    screen = make() if make is not None else None  # faster approximate scores, if any
    # reused buffers: fresh multi-MB allocations per chunk cost more than the comparisons
    buf = np.empty((batch, n_items), dtype=np.float32)
    mask = np.empty((batch, n_items), dtype=bool) if screen is None else None
    for start in range(0, users.size, batch):
        u, tg = users[start : start + batch], targets[start : start + batch]
        chunk = seen[u]
        if screen is not None:
            got = screen(u, buf[: u.size])
            r, t, best = _rank_screened(scorer, u, tg, chunk, got, kc)
        else:
            r, t, best = _rank_exact(scorer, u, tg, chunk, kc, buf[: u.size], mask[: u.size])
        ranks[start : start + u.size], ties[start : start + u.size] = r, t
        in_top[best] = True
    return ranks, ties, float(np.count_nonzero(in_top)) / n_items


def _rank_exact(
    scorer: Scorer,
    u: np.ndarray,
    tg: np.ndarray,
    seen: sp.csr_matrix,
    kc: int,
    s: np.ndarray,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chunk of users from exact scores: (ranks, ties, items in some top-``kc``)."""
    b, n_items = s.shape
    scores = _as_numpy(scorer.score_all(u))
    if scores.shape != (b, n_items):
        raise ValueError(f"score_all() returned shape {scores.shape}, expected (B, n_items)")
    np.copyto(s, scores, casting="same_kind")
    del scores
    rows = np.arange(b)
    t = s[rows, tg].copy()
    s[np.repeat(rows, np.diff(seen.indptr)), seen.indices] = -np.inf
    top = torch.topk(torch.from_numpy(s), kc, dim=1)
    best = top.indices.numpy()[np.isfinite(top.values.numpy())]
    s[rows, tg] = t  # the target competes even if seen before
    # competitors at least as good = all items but those strictly below the target,
    # less the target itself (NaN is never below anything, so it counts against)
    np.less(s, t[:, None], out=mask)
    ranks = n_items - 1 - np.count_nonzero(mask, axis=1)
    np.equal(s, t[:, None], out=mask)
    tie = np.count_nonzero(mask, axis=1) - 1
    return ranks, np.where(np.isnan(t), 0, tie), best


def _rank_screened(
    scorer: Scorer, u: np.ndarray, tg: np.ndarray, seen: sp.csr_matrix, got: Approximate, kc: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_rank_exact``'s results from approximate scores with an error bound.

    Each item's exact score lies within ``err_users[u] + err_items[i]`` of its approximate
    one, so every item farther than that from the target's exact score is settled above or
    below it (``fused.screen``, one pass in C); only the rest is scored exactly, with every
    item that could be in the exact top-``kc``.
    Ranks and ties are those of exact scores.
    """
    s, eu, ei = got.scores, got.err_users, got.err_items
    b, n_items = s.shape
    rows = np.arange(b)
    t = scorer.score(u, tg[:, None])[:, 0]
    s[np.repeat(rows, np.diff(seen.indptr)), seen.indices] = -np.inf
    settled = fused.screen(s, ei, t, eu, tg, kc)
    r, c = np.divmod(settled.band, n_items)
    exact = scorer.score(u[r], c[:, None])[:, 0] if r.size else np.zeros(0, np.float32)
    below = settled.below + np.bincount(r[exact < t[r]], minlength=b)
    tie = np.bincount(r[exact == t[r]], minlength=b)
    best = _exact_top(scorer, u, settled.candidates, n_items, kc)
    return n_items - 1 - below, np.where(np.isnan(t), 0, tie), best


def _exact_top(
    scorer: Scorer, u: np.ndarray, candidates: np.ndarray, n_items: int, kc: int
) -> np.ndarray:
    """The items of each row's exact top-``kc`` among its ``candidates`` (row * n + item)."""
    r, c = np.divmod(candidates, n_items)
    exact = scorer.score(u[r], c[:, None])[:, 0] if r.size else np.zeros(0, np.float32)
    order = np.lexsort((-exact, r))  # by row, best first
    r, c = r[order], c[order]
    return c[np.arange(r.size) - np.searchsorted(r, r) < kc]


def evaluate_holdout(scorer: Scorer, h: Holdout, *, full: bool = True) -> Metrics:
    """Both protocols on a prepared ``Holdout`` (full ranking optional: it is the costly one)."""
    ranks, ties = sampled_ranks(scorer, h.users, h.targets, h.candidates)
    per_user = _per_user("sampled", ranks, ties)
    sampled = _summary(ranks, ties, K_LIST)
    if not full:
        return Metrics(sampled, None, None, per_user)
    ranks, ties, cov = full_ranks(scorer, h.users, h.targets, h.seen)
    per_user |= _per_user("full", ranks, ties)
    return Metrics(sampled, _summary(ranks, ties, K_LIST), cov, per_user)


def _per_user(protocol: str, ranks: np.ndarray, ties: np.ndarray) -> dict[str, np.ndarray]:
    k = PAIRED_K
    return {
        f"{protocol}.hr@{k}": metrics.hits(ranks, k, ties),
        f"{protocol}.ndcg@{k}": metrics.gains(ranks, k, ties),
    }


def evaluate(
    scorer: Scorer, split: Split, *, seed: int = 0, on: Part = "test", full: bool = True
) -> Metrics:
    """Evaluate ``scorer`` on the test (or validation) users of ``split``.

    Candidates come from ``sample_candidates(split.seen_anywhere(), users,
    np.random.default_rng(seed))``: every model compared under one seed meets the same ones.
    """
    return evaluate_holdout(scorer, holdout(split, part=on, seed=seed), full=full)


def _summary(ranks: np.ndarray, ties: np.ndarray, k_list: tuple[int, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in k_list:
        out[f"hr@{k}"] = metrics.hit_rate(ranks, k, ties)
        out[f"ndcg@{k}"] = metrics.ndcg(ranks, k, ties)
    out["users"] = int(ranks.size)
    return out


def _check_users_targets(users: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(users, dtype=np.int64)
    t = np.asarray(targets, dtype=np.int64)
    if u.ndim != 1 or t.shape != u.shape:
        raise ValueError(f"users and targets must be 1-D of equal length, got {u.shape}, {t.shape}")
    return u, t


def _as_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


__all__ = [
    "EVAL_CANDIDATES",
    "K_LIST",
    "Holdout",
    "Metrics",
    "Scorer",
    "evaluate",
    "evaluate_full",
    "evaluate_holdout",
    "evaluate_sampled",
    "holdout",
]
