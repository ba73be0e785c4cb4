"""The peers' scorers: most-popular, a dot product (BPR), iALS, EASE in its two forms.

Those with a user side that can take in more of a user's movies without refitting what was
learned from train have ``with_inputs(x)``: the same model scoring users whose input is
their row of ``x`` (binary users x items; train + validation at test). Popularity's input
is what it counts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class Popularity:
    """Every user gets the same scores: how many training users interacted with each item."""

    item_counts: np.ndarray  # float32 (n_items,)
    n_users: int

    @property
    def n_items(self) -> int:
        return int(self.item_counts.size)

    @classmethod
    def counting(cls, x: sp.csr_matrix) -> Popularity:
        """Users per item of the binary matrix ``x``."""
        counts = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float32)
        return cls(counts, int(x.shape[0]))

    def with_inputs(self, x: sp.csr_matrix) -> Popularity:
        _check_inputs(self, x)
        return Popularity.counting(x)

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
class ALS(DotProduct):
    """Implicit ALS factors, with what the user step needs to take in new movies."""

    regularization: float
    alpha: float  # confidence of a positive (missing entries: 1), as in the fit

    def with_inputs(self, x: sp.csr_matrix) -> ALS:
        """Every user's vector solved again from their row of ``x``, item factors fixed."""
        _check_inputs(self, x)
        users = als_user_step(self.item_factors, x, self.regularization, self.alpha)
        return replace(self, user_factors=users)


def als_user_step(
    item_factors: np.ndarray, x: sp.csr_matrix, regularization: float, alpha: float
) -> np.ndarray:
    """The exact ALS user step (Hu, Koren & Volinsky 2008) for binary ``x``: with Y the item
    factors and Y_u the rows of user u's items, x_u = (YᵀY + (α - 1) Y_uᵀY_u + λI)⁻¹ α Y_uᵀ1,
    through ``implicit``'s ``recalculate_user`` (an exact Cholesky solve in C, every user at
    once; its fit solves the same system by conjugate gradient steps); a user without items
    gets zeros. float32 (n_users, f)."""
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(
        factors=item_factors.shape[1], regularization=regularization, alpha=alpha
    )
    model.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    with threadpool_limits(1, "blas"):  # implicit parallelises itself
        users = model.recalculate_user(np.arange(x.shape[0]), sp.csr_matrix(x))
    return np.ascontiguousarray(users, dtype=np.float32)


@dataclass(frozen=True)
class _Rows:
    """A scorer whose users are their rows of ``history`` (the two EASE forms): its sizes,
    and the same model reading other rows."""

    history: sp.csr_matrix  # (n_users, n_items) binary: the users' rows (train when fitted)

    @property
    def n_users(self) -> int:
        return int(self.history.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.history.shape[1])

    def with_inputs(self, x: sp.csr_matrix) -> Self:
        """Users' rows from ``x``; what the weights were fitted from stays train."""
        _check_inputs(self, x)
        return replace(self, history=x)


@dataclass(frozen=True)
class EASE(_Rows):
    """Embarrassingly Shallow Autoencoder (Steck, WWW 2019): scores = history @ weights.

    ``weights`` is only held for ``active`` items (those with a training interaction); the
    closed form gives every other item a zero row and column, so it scores 0 exactly.
    """

    active: np.ndarray  # int64 (A,) item indices with at least one training interaction
    weights: np.ndarray  # float32 (A, A), zero diagonal

    def score_all(self, users: np.ndarray) -> np.ndarray:
        x = self.history[np.asarray(users)][:, self.active]
        out = np.zeros((x.shape[0], self.n_items), dtype=np.float32)
        out[:, self.active] = np.asarray(x @ self.weights, dtype=np.float32)
        return out

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self.score_all(users), np.asarray(items), axis=1)


@dataclass(frozen=True)
class EASEDual(_Rows):
    """EASE through its user-side (Woodbury) form, exact and cheap when users < items.

    With K = (λI + X Xᵀ)⁻¹ over the training users, (XᵀX + λI)⁻¹ = (I - Xᵀ K X) / λ, so
    with Q = K X and q_j = (Xᵀ K X)_jj the EASE scores are
    ``x_u B = x_u - (x_u - (x_u Xᵀ) Q) / (1 - q)``, and no item x item matrix is formed.
    """

    basis: sp.csr_matrix  # (M, n_items): the rows of ``history`` with any interaction
    q_matrix: np.ndarray  # float32 (M, n_items): K @ basis
    denominator: np.ndarray  # float64 (n_items,): 1 - q (λ diag(P)), positive

    def score_all(self, users: np.ndarray) -> np.ndarray:
        x = self.history[np.asarray(users)]
        overlap = np.asarray((x @ self.basis.T).todense(), dtype=np.float32)  # (B, M)
        xd = np.asarray(x.todense(), dtype=np.float64)
        scores = xd - (xd - overlap @ self.q_matrix) / self.denominator
        return scores.astype(np.float32)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.take_along_axis(self.score_all(users), np.asarray(items), axis=1)


def _check_inputs(scorer: Popularity | DotProduct | EASE | EASEDual, x: sp.csr_matrix) -> None:
    if x.shape != (scorer.n_users, scorer.n_items):
        raise ValueError(f"inputs are {x.shape}, the model {(scorer.n_users, scorer.n_items)}")
