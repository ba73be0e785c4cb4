"""The "history" model: a user is their recent items (``user_input = "history"``).

    user_vec(u) = sum_k w_k * E[h_k] / sum_{k present} w_k   (h_k: k-th latest item, k=0 latest)
    score(u, i) = user_vec(u) . Q_i + b_i

``E`` (``item_in``) and ``Q`` (``item_out``) are separate item embeddings; ``w_k =
exp(position_logits[k])`` is one learned weight per recency position (initialised to
``0.8 ** k``) and is normalised over the positions a user actually has. There is no user
embedding table: a user *is* their last ``L`` items. Those items live in the ``history``
buffer ``(n_users, L)`` (padding id ``n_items``), so they are part of ``state_dict`` and travel
with the weights (safetensors) like any parameter.

Which items the buffer holds decides what is being scored; ``with_inputs(inter)`` (the
protocol's, ``movierec.models.protocol.inputs_for``) gives a view with the buffer built
from ``inter``: train for validation, train + validation for test (what training leaves),
everything when serving a known user.

Cold start needs no optimisation: a liked list is a history, ``score_new_user`` scores it
in one forward pass.

Training (``movierec.training``, causal examples): every training positive at
chronological position ``t`` of its user is predicted from the (up to ``L``) items before
it, against fresh uniform unseen negatives, with a sampled-softmax (cross-entropy, positive
at index 0) loss: ``example_losses(histories, items)``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from movierec.data import Interactions
from movierec.models.protocol import UserInput, check_index_spaces

if TYPE_CHECKING:
    from movierec.foldin import FoldInConfig
    from movierec.models import ModelConfig

HISTORY_LEN = 20  # L: items of history per user
POSITION_DECAY = 0.8  # initial weight of recency position k is POSITION_DECAY ** k
INIT_STD = 0.05  # item embeddings ~ N(0, INIT_STD) unless build_model's init_std overrides
CHUNK_ROWS = 1 << 19  # same meaning as scoring.CHUNK_ROWS (unused: score_all is one matmul)

# ----------------------------------------------------------------------------- histories


def chronological_order(inter: Interactions) -> np.ndarray:
    """Row order by user, then timestamp; among equal timestamps the lowest item index comes
    last (the split's tie-break: it counts as the latest)."""
    return np.lexsort((-inter.items.astype(np.int64), inter.timestamps, inter.users))


@dataclass(frozen=True)
class Sequences:
    """Every user's items in chronological order, flattened: user u owns
    ``items[starts[u]:starts[u + 1]]``."""

    items: np.ndarray  # int64 (N,), chronological within each user
    users: np.ndarray  # int64 (N,), ascending
    starts: np.ndarray  # int64 (n_users + 1,)
    n_items: int

    @classmethod
    def from_interactions(cls, inter: Interactions) -> Sequences:
        o = chronological_order(inter)
        users = inter.users[o].astype(np.int64)
        counts = np.bincount(users, minlength=inter.n_users)
        starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return cls(inter.items[o].astype(np.int64), users, starts, inter.n_items)

    def last(self, length: int) -> np.ndarray:
        """(n_users, length): each user's last ``length`` items, latest first, padded."""
        ends = self.starts[1:]
        idx = ends[:, None] - 1 - np.arange(length, dtype=np.int64)[None, :]
        ok = idx >= self.starts[:-1, None]
        return np.where(
            ok, self.items[np.clip(idx, 0, None)] if self.items.size else 0, self.n_items
        )


def build_histories(inter: Interactions, L: int = HISTORY_LEN) -> torch.Tensor:
    """(n_users, L) int64: each user's last ``L`` items of ``inter``, most recent first,
    ``inter.n_items`` (padding) where a user has fewer. Ties on the timestamp are broken as
    in the split (``chronological_order``)."""
    return torch.as_tensor(Sequences.from_interactions(inter).last(L), dtype=torch.int64)


# ----------------------------------------------------------------------------- the model


class HistoryModel(nn.Module):
    """Score = (position-weighted mean of the user's last L input embeddings) . Q_i + b_i."""

    user_input: ClassVar[UserInput] = "history"

    def __init__(self, n_users: int, n_items: int, factors: int = 64, L: int = HISTORY_LEN) -> None:
        super().__init__()
        if min(n_users, n_items, factors, L) < 1:
            raise ValueError("n_users, n_items, factors and L must be positive")
        self.n_users, self.n_items, self.L, self.d = n_users, n_items, L, factors
        self.pad = n_items
        self.item_in = nn.Embedding(n_items + 1, factors, padding_idx=n_items)
        self.item_out = nn.Embedding(n_items, factors)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        decay = torch.tensor([POSITION_DECAY**k for k in range(L)], dtype=torch.float32)
        self.position_logits = nn.Parameter(decay.log())
        self.register_buffer("history", torch.full((n_users, L), n_items, dtype=torch.int64))
        nn.init.normal_(self.item_in.weight, 0.0, INIT_STD)
        nn.init.normal_(self.item_out.weight, 0.0, INIT_STD)
        # The padding row is never read (histories are masked), so re-initialising it
        # (build_model's init_std) changes nothing.

    @classmethod
    def from_config(cls, c: ModelConfig) -> HistoryModel:
        """``factors`` is d; ``length`` is L (``HISTORY_LEN`` when None); ``layers`` and
        the rest are ignored."""
        return cls(c.n_users, c.n_items, c.factors, c.length or HISTORY_LEN)

    # -- the user side
    def input_weights(self, hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``hist`` (..., m) item ids, most recent / most important first, ``n_items`` (or
        any id outside [0, n_items)) as padding -> (the first L columns' input embeddings
        (..., L', d), their normalised weights w_k (..., L'), 0 at padding)."""
        hist = hist[..., : self.L]
        mask = (hist >= 0) & (hist < self.n_items)
        emb = self.item_in(torch.where(mask, hist, self.pad))
        logits = self.position_logits[: hist.shape[-1]]
        w = torch.exp(logits - logits.max()) * mask  # stable; exact after normalisation
        return emb, w / w.sum(dim=-1, keepdim=True).clamp_min(1e-12)

    def user_vectors_from_items(self, hist: torch.Tensor) -> torch.Tensor:
        """``hist`` as ``input_weights`` reads it -> user vectors (..., d). Columns past L
        are dropped; an all-padding row gives the zero vector (score = item bias)."""
        emb, w = self.input_weights(hist)
        return (w.unsqueeze(-1) * emb).sum(dim=-2)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_vectors_from_items(self.history[users])

    # -- scoring
    def score_vectors(self, vectors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``vectors`` (..., d) against ``items`` broadcastable to (...) -> logits."""
        return (vectors * self.item_out(items)).sum(dim=-1) + self.item_bias[items]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Broadcasting like every model: users (B,) with items (B,), or (B, 1) with (B, C)."""
        return self.score_vectors(self.user_vectors(users), items)

    def score_vectors_all(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors @ self.item_out.weight.T + self.item_bias

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
        """(B,) -> (B, n_items): one matrix product."""
        return self.score_vectors_all(self.user_vectors(users))

    @torch.no_grad()
    def score_items_for_history(self, hist: torch.Tensor) -> torch.Tensor:
        """Cold start: (B, m) liked items (padded with ``n_items``) -> (B, n_items)."""
        hist = torch.as_tensor(hist, dtype=torch.int64, device=self.item_bias.device)
        return self.score_vectors_all(self.user_vectors_from_items(hist))

    # -- the protocol
    @property
    def history_len(self) -> int:
        return self.L

    def example_losses(self, histories: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Sampled softmax per example: ``histories`` (B, L) against ``items`` (B, C), the
        positive in column 0."""
        logits = self.score_vectors(self.user_vectors_from_items(histories)[:, None], items)
        target = torch.zeros(len(items), dtype=torch.long, device=items.device)
        return F.cross_entropy(logits, target, reduction="none")

    def with_inputs(self, inter: Interactions) -> HistoryModel:
        """A view of this model (same parameters, shared) with its own history buffer built
        from ``inter``; this model is left untouched."""
        check_index_spaces(self, inter)
        view = copy.copy(self)  # shallow: parameter and submodule dicts are shared
        view._buffers = dict(self._buffers)
        view._buffers["history"] = build_histories(inter, self.L).to(self.history.device)
        return view

    def score_new_user(self, liked: torch.Tensor, fold: FoldInConfig) -> torch.Tensor:
        """The liked list is the history: one forward pass (``fold`` is not needed)."""
        return self.score_items_for_history(torch.as_tensor(liked).reshape(1, -1))[0]

    @torch.no_grad()
    def explain(self, inputs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Each input's exact share of the score: ``w_k * E[h_k] . Q_i`` (the shares and
        the item bias sum to ``score(u, i)``); ``-inf`` at padding and past column L,
        which the model does not read."""
        inputs = inputs.long()
        emb, w = self.input_weights(inputs)  # (B, L', d), (B, L')
        share = self.item_out(items.long().clamp(0, self.n_items - 1)) @ emb.transpose(1, 2)
        share = share * w[:, None, :]
        read = (inputs[:, : self.L] >= 0) & (inputs[:, : self.L] < self.n_items)
        out = torch.full((*items.shape, inputs.shape[1]), -torch.inf, device=share.device)
        out[..., : share.shape[-1]] = share.masked_fill(~read[:, None, :], -torch.inf)
        return out

    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        """(n_items, 2d) unit-length item representations for "similar movies": the input and
        output embeddings, each normalised, side by side."""
        parts = [self.item_in.weight[: self.n_items], self.item_out.weight]
        return F.normalize(torch.cat([F.normalize(p, dim=1) for p in parts], dim=1), dim=1)
