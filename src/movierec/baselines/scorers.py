"""The peers' scorers: most-popular, a dot product (BPR, iALS), EASE in its two forms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


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
