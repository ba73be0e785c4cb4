"""Peers for the neural models, in the same harness: most-popular, BPR, iALS, EASE.

Each peer is fit on a binary user x item CSR matrix of *training* interactions and returns
a ``Scorer``. One rule for every model, ours included: fit on train only, choose settings
on validation (sampled HR@10), report test. ``tune`` runs that selection over a small,
documented grid per peer; ``PEERS`` lists the peers, their defaults and their grids.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from movierec.evaluate import Scorer, evaluate_sampled, holdout
from movierec.split import Split

EASE_MAX_ITEMS = 30_000  # dense float32 item x item matrices: 30k items is 3.6 GB each


# --------------------------------------------------------------------------- scorers


@dataclass(frozen=True)
class Popularity:
    """Every user gets the same scores: how many training users interacted with each item."""

    item_counts: np.ndarray  # float32 (n_items,)
    n_users: int

    @property
    def n_items(self) -> int:
        return int(self.item_counts.size)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.item_counts[np.asarray(items)]

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.item_counts, (len(users), 1))


@dataclass(frozen=True)
class DotProduct:
    """score(u, i) = user_factors[u] . item_factors[i] (BPR, iALS, any factor model)."""

    user_factors: np.ndarray  # float32 (n_users, f)
    item_factors: np.ndarray  # float32 (n_items, f)

    @property
    def n_users(self) -> int:
        return int(self.user_factors.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u = self.user_factors[np.asarray(users)]
        v = self.item_factors[np.asarray(items)]
        return np.einsum("bf,bcf->bc", u, v).astype(np.float32, copy=False)

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return (self.user_factors[np.asarray(users)] @ self.item_factors.T).astype(
            np.float32, copy=False
        )


@dataclass(frozen=True)
class EASE:
    """Embarrassingly Shallow Autoencoder (Steck, WWW 2019): scores = history @ weights.

    ``weights`` is only held for ``active`` items (those with a training interaction); the
    closed form gives every other item a zero row and column, so it scores 0 exactly.
    """

    history: sp.csr_matrix  # (n_users, n_items) binary training matrix
    active: np.ndarray  # int64 (A,) item indices with at least one training interaction
    weights: np.ndarray  # float32 (A, A), zero diagonal

    @property
    def n_users(self) -> int:
        return int(self.history.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.history.shape[1])

    def score_all(self, users: np.ndarray) -> np.ndarray:
        x = self.history[np.asarray(users)][:, self.active]
        out = np.zeros((x.shape[0], self.n_items), dtype=np.float32)
        out[:, self.active] = np.asarray(x @ self.weights, dtype=np.float32)
        return out

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self.score_all(users), np.asarray(items), axis=1)


@dataclass(frozen=True)
class EASEDual:
    """EASE through its user-side (Woodbury) form, exact and cheap when users < items.

    With K = (λI + X Xᵀ)⁻¹ over the training users, (XᵀX + λI)⁻¹ = (I - Xᵀ K X) / λ, so
    with Q = K X and q_j = (Xᵀ K X)_jj the EASE scores are
    ``x_u B = x_u - (x_u - (x_u Xᵀ) Q) / (1 - q)``, and no item x item matrix is formed.
    """

    history: sp.csr_matrix  # (n_users, n_items) binary training matrix
    basis: sp.csr_matrix  # (M, n_items): the rows of ``history`` with any interaction
    q_matrix: np.ndarray  # float32 (M, n_items): K @ basis
    denominator: np.ndarray  # float64 (n_items,): 1 - q (λ diag(P)), positive

    @property
    def n_users(self) -> int:
        return int(self.history.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.history.shape[1])

    def score_all(self, users: np.ndarray) -> np.ndarray:
        x = self.history[np.asarray(users)]
        overlap = np.asarray((x @ self.basis.T).todense(), dtype=np.float32)  # (B, M)
        xd = np.asarray(x.todense(), dtype=np.float64)
        scores = xd - (xd - overlap @ self.q_matrix) / self.denominator
        return scores.astype(np.float32)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self.score_all(users), np.asarray(items), axis=1)


# --------------------------------------------------------------------------- fitting


def default_threads() -> int:
    """Cores this process may use (affinity-aware), for implicit's own thread pool."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _binary_csr(train: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.sum_duplicates()
    x.data[:] = 1.0
    x.eliminate_zeros()
    x.sort_indices()
    return x


def fit_popularity(train: sp.spmatrix, *, seed: int = 0) -> Popularity:
    """Counts of training users per item (``seed`` unused: the model is deterministic)."""
    x = _binary_csr(train)
    counts = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float32)
    return Popularity(counts, int(x.shape[0]))


def fit_bpr(
    train: sp.spmatrix,
    *,
    factors: int = 64,
    learning_rate: float = 0.01,
    regularization: float = 0.01,
    iterations: int = 100,
    seed: int = 0,
    threads: int | None = None,
) -> DotProduct:
    """Bayesian Personalised Ranking (``implicit.cpu.bpr``); item biases live in the last
    factor column (the user side holds 1 there), so the dot product includes them."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(
        factors=factors,
        learning_rate=learning_rate,
        regularization=regularization,
        iterations=iterations,
        num_threads=threads or default_threads(),
        random_state=seed,
    )
    with threadpool_limits(1, "blas"):
        model.fit(_binary_csr(train), show_progress=False)
    return DotProduct(_f32(model.user_factors), _f32(model.item_factors))


def fit_ials(
    train: sp.spmatrix,
    *,
    factors: int = 64,
    regularization: float = 0.05,
    alpha: float = 2.0,
    iterations: int = 15,
    seed: int = 0,
    threads: int | None = None,
) -> DotProduct:
    """Implicit ALS (Hu, Koren & Volinsky 2008) via ``implicit.cpu.als``; positives carry
    confidence ``alpha`` (implicit scales the binary matrix by it), missing entries 1."""
    from implicit.cpu.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads fight it
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            num_threads=threads or default_threads(),
            random_state=seed,
        )
        model.fit(_binary_csr(train), show_progress=False)
    return DotProduct(_f32(model.user_factors), _f32(model.item_factors))


def fit_ease(
    train: sp.spmatrix, *, lam: float = 500.0, seed: int = 0, form: str = "auto"
) -> EASE | EASEDual:
    """EASE closed form: P = (XᵀX + λI)⁻¹, B = I - P / diag(P), i.e. B_ij = -P_ij / P_jj
    off the diagonal and 0 on it. Refuses catalogues above ``EASE_MAX_ITEMS`` active items.

    ``form``: "primal" inverts the item x item Gram matrix (cubic in items); "dual" uses the
    exact user-side form (cubic in users, ``EASEDual``); "auto" picks the smaller side.
    ``seed`` is unused: the fit is deterministic.
    """
    if lam < 1:
        raise ValueError(f"EASE needs lam >= 1 (float32 inverse), got {lam}")
    if form not in ("auto", "primal", "dual"):
        raise ValueError(f"form must be 'auto', 'primal' or 'dual', got {form!r}")
    x = _binary_csr(train)
    active = np.flatnonzero(np.bincount(x.indices, minlength=x.shape[1]) > 0)
    if active.size > EASE_MAX_ITEMS:
        gb = active.size**2 * 4 / 1e9
        raise ValueError(
            f"EASE needs a dense {active.size:,} x {active.size:,} item matrix (~{gb:.0f} GB "
            f"in float32, several times that while inverting, in cubic time); it is limited "
            f"to {EASE_MAX_ITEMS:,} items with training interactions. Filter the catalogue "
            "(e.g. --min-year or a minimum item count) or leave EASE out."
        )
    rows = np.flatnonzero(np.diff(x.indptr) > 0)
    if form == "dual" or (form == "auto" and rows.size < active.size):
        return _fit_ease_dual(x, rows, lam)
    xa = x[:, active]
    # float32 Cholesky inverse of the symmetric positive definite Gram matrix: with lam >= 1
    # it is well conditioned (float64 agrees to ~1e-5 relative) and twice as fast
    gram = np.asarray((xa.T @ xa).todense(), dtype=np.float32)
    gram[np.diag_indices_from(gram)] += np.float32(lam)
    p = _spd_inverse(gram)
    weights = p
    weights /= -np.diag(p).copy()[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return EASE(x, active.astype(np.int64), weights)


def _fit_ease_dual(x: sp.csr_matrix, rows: np.ndarray, lam: float) -> EASEDual:
    basis = x[rows]
    kernel = np.asarray((basis @ basis.T).todense(), dtype=np.float64)
    kernel[np.diag_indices_from(kernel)] += lam
    k = _spd_inverse(kernel)
    q_matrix = np.asarray((basis.T @ k).T)  # K X, (M, n_items), float64
    q = np.asarray(basis.multiply(q_matrix).sum(axis=0)).ravel()
    return EASEDual(x, basis, q_matrix.astype(np.float32), 1.0 - q)


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix through Cholesky (overwrites ``a``)."""
    potrf, potri = (
        (scipy.linalg.lapack.spotrf, scipy.linalg.lapack.spotri)
        if a.dtype == np.float32
        else (scipy.linalg.lapack.dpotrf, scipy.linalg.lapack.dpotri)
    )
    chol, info = potrf(a, lower=False, overwrite_a=True)
    if info != 0:
        raise ValueError(f"EASE: Cholesky factorisation failed (LAPACK info {info})")
    del a
    p, info = potri(chol, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"EASE: inversion failed (LAPACK info {info})")
    p = np.triu(p)  # potri fills the upper triangle only
    p += np.triu(p, 1).T
    return p


def _f32(a: Any) -> np.ndarray:
    a = a.to_numpy() if hasattr(a, "to_numpy") else a  # implicit's GPU arrays, if any
    return np.ascontiguousarray(a, dtype=np.float32)


# --------------------------------------------------------------------------- registry


def grid(**axes: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """Cartesian product of named axes, in order: ``grid(a=[1, 2], b=[3])``."""
    names = list(axes)
    return tuple(dict(zip(names, vals, strict=True)) for vals in itertools.product(*axes.values()))


FitFn = Callable[..., Scorer]  # fit(train_csr, *, seed, **params) -> Scorer


@dataclass(frozen=True)
class Peer:
    """A peer model: how to fit it, its defaults, its tuning grid, whether ``seed`` matters."""

    name: str
    fit: FitFn
    defaults: Mapping[str, Any]
    grid: tuple[dict[str, Any], ...]
    seeded: bool = True  # False: the fit is deterministic, so one fit serves every seed


# Tuning budget: at most 36 fits per peer on validation, each grid spanning the peer's usual
# operating range on MovieLens-sized data (BPR: 18, as each 300-iteration fit costs about ten
# iALS fits; on ml-latest-small validation 300 iterations beat 100 at every learning rate, and
# regularisation 0.001 and 0.1 lost to 0.01). Selection: validation sampled HR@10, ties broken
# by validation NDCG@10, then by grid order.
PEERS: dict[str, Peer] = {
    "popularity": Peer("popularity", fit_popularity, {}, ({},), seeded=False),
    "bpr": Peer(
        "bpr",
        fit_bpr,
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
        grid(
            factors=[32, 64, 128],
            learning_rate=[0.01, 0.05],
            regularization=[0.003, 0.01, 0.03],
            iterations=[300],
        ),
    ),
    "ials": Peer(
        "ials",
        fit_ials,
        {"factors": 64, "regularization": 0.05, "alpha": 2.0, "iterations": 15},
        grid(factors=[32, 64, 128], regularization=[0.01, 0.1, 1.0], alpha=[1.0, 4.0, 16.0, 40.0]),
    ),
    "ease": Peer(
        "ease",
        fit_ease,
        {"lam": 500.0},
        grid(lam=[50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]),
        seeded=False,
    ),
}


def fit_peer(
    name: str, train: sp.spmatrix, params: Mapping[str, Any] | None = None, *, seed: int = 0
) -> Scorer:
    """Fit peer ``name`` on ``train`` with its defaults overridden by ``params``."""
    peer = get_peer(name)
    return peer.fit(train, seed=seed, **{**peer.defaults, **(params or {})})


@dataclass(frozen=True)
class Tuned:
    """The outcome of ``tune_peer``: chosen settings, the model fit with them, the table."""

    params: dict[str, Any]
    scorer: Scorer
    fit_seconds: float  # time to fit the chosen settings once
    table: list[dict[str, Any]]  # one row per grid point: settings, hr@10, ndcg@10, fit_seconds


FitCache = dict[tuple, tuple[Scorer, float]]


def tune_peer(
    name: str,
    split: Split,
    grid: Sequence[Mapping[str, Any]] | None = None,
    *,
    seed: int = 0,
    cache: FitCache | None = None,
) -> Tuned:
    """Fit ``name`` on train for every grid point; keep the best on validation sampled HR@10.

    Every grid point meets the same validation candidates (drawn from ``seed``) and the same
    model seed. ``cache`` (any dict, reused across calls on the same split) keeps the fits
    of deterministic peers, so tuning them under several seeds fits each grid point once.
    """
    peer = get_peer(name)
    points = list(peer.grid if grid is None else grid)
    if not points:
        raise ValueError(f"empty tuning grid for {name!r}")
    h = holdout(split, part="validation", seed=seed)
    train = split.train.to_csr()
    table: list[dict[str, Any]] = []
    chosen: Tuned | None = None
    best_key = (-1.0, -1.0)
    for point in points:
        params = {**peer.defaults, **point}
        key = (name, tuple(sorted(params.items())), seed if peer.seeded else None)
        if cache is not None and key in cache:
            scorer, seconds = cache[key]
        else:
            t0 = time.perf_counter()
            scorer = peer.fit(train, seed=seed, **params)
            seconds = time.perf_counter() - t0
            if cache is not None and not peer.seeded:
                cache[key] = (scorer, seconds)
        m = evaluate_sampled(scorer, h.users, h.targets, h.candidates, k_list=(10,))
        row = {**params, "hr@10": m["hr@10"], "ndcg@10": m["ndcg@10"], "fit_seconds": seconds}
        table.append(row)
        if chosen is None or (m["hr@10"], m["ndcg@10"]) > best_key:
            best_key = (m["hr@10"], m["ndcg@10"])
            chosen = Tuned(params, scorer, seconds, table)
        del scorer
    if chosen is None:  # unreachable: points is non-empty
        raise RuntimeError("tuning selected nothing")
    return chosen


def tune(
    name: str, split: Split, grid: Sequence[Mapping[str, Any]] | None = None, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Best settings for peer ``name`` on validation sampled HR@10, and the whole table."""
    t = tune_peer(name, split, grid, seed=seed)
    return t.params, t.table


def get_peer(name: str) -> Peer:
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted(PEERS)}")
    return PEERS[name]
