"""Fitting each peer on a binary user x item CSR matrix of training interactions."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from movierec.baselines.scorers import ALS, EASE, DotProduct, EASEDual, Popularity

EASE_MAX_ITEMS = 30_000  # dense float32 item x item matrices: 30k items is 3.6 GB each


def default_threads() -> int:
    """Cores this process may use (affinity-aware), for implicit's own thread pool."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def binary_csr(train: sp.spmatrix) -> sp.csr_matrix:
    """``train`` as a float32 CSR matrix of ones (duplicates collapsed), sorted indices."""
    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.sum_duplicates()
    x.data[:] = 1.0
    x.eliminate_zeros()
    x.sort_indices()
    return x


def fit_popularity(train: sp.spmatrix, *, seed: int = 0) -> Popularity:
    """Counts of training users per item (``seed`` unused: the model is deterministic)."""
    return Popularity.counting(binary_csr(train))


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
        model.fit(binary_csr(train), show_progress=False)
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
) -> ALS:
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
        model.fit(binary_csr(train), show_progress=False)
    users, items = _f32(model.user_factors), _f32(model.item_factors)
    return ALS(users, items, regularization, alpha)


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
    x = binary_csr(train)
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
