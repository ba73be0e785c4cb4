"""SASRec: a causal self-attention model over the user's last ``N`` movies
(``user_input = "sequence"``).

    x_t   = E[s_t] + P[t]                       (s: the user's items, oldest first; t counts
                                                 from the window's first real item)
    h     = LayerNorm(Block_2(Block_1(dropout(x))))   Block: pre-norm causal attention + FFN
    score(u, i) = h_T . E_i                      (T: the latest position; E tied in and out)

A block is ``x + drop(attn(LN(x)))`` then ``x + drop(ffn(LN(x)))``; attention is causal (a
position sees itself and earlier real items only) and never looks at padding. Positions are
counted from the first real item of the window, so the output at a position depends on the
items up to it and on nothing else: not on later items, not on how much padding precedes
them. That makes the output at position ``t`` of a training sequence exactly the user vector
the model would give after those ``t + 1`` items.

Inputs are chronological and right-aligned (oldest first, latest in the last column);
``n_items`` or any id outside ``[0, n_items)`` is padding. Each user's window lives in the
``history`` buffer ``(n_users, N)`` (int32: a quarter of ML-25M's int64 size), part of
``state_dict`` like the history model's; ``with_inputs(inter)`` builds it from ``inter``.

Training (``movierec.training.epochs.SequenceRows``): a training user's last ``N + 1`` items,
inputs ``[:-1]`` and targets ``[1:]``; every real position predicts the next item:

- ``loss="full"``: softmax cross-entropy over the whole catalogue (SASRec+, Klenitskiy &
  Vasilev 2023); memory ~ positions x items per batch, fine for ~10k movies;
- ``loss="sampled"``: softmax over the target and ``negatives`` items drawn uniformly per
  batch (shared by its positions; a negative equal to a position's target is masked).
  Uniform draws need no logQ correction: every item's log-probability of being drawn is the
  same constant, which cancels in the softmax. Drawn from torch's RNG on the model's device
  (seeded by ``fit``, saved in checkpoints), like dropout's masks.

``example_losses`` returns, per sequence, the sum of its positions' losses divided by ``N``
(a constant): the loop's mean over sequences then weighs every position equally.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from movierec.data import Interactions
from movierec.models.history import build_histories
from movierec.models.protocol import UserInput, check_index_spaces, cosine_contributions

if TYPE_CHECKING:
    from movierec.foldin import FoldInConfig
    from movierec.models import ModelConfig

MAX_LEN = 200  # N: the latest items a user is read as
BLOCKS = 2  # self-attention blocks
HEADS = 1  # attention heads (factors must divide by it)
FFN_MULT = 1  # feed-forward hidden size = FFN_MULT * d (SASRec's is d)
INIT_STD = 0.05  # item and position embeddings ~ N(0, INIT_STD) unless init_std overrides
FULL_SOFTMAX_MAX_ITEMS = 30_000  # loss="auto": full softmax up to this many items, else sampled
CHUNK_ROWS = 1 << 19  # same meaning as scoring.CHUNK_ROWS (unused: score_all is one matmul)

Loss = Literal["full", "sampled"]


def leading_padding(valid: torch.Tensor) -> int:
    """Columns of ``valid`` (B, T) that are padding in every row, from the left (at most T-1:
    one column always stays)."""
    cols = valid.any(dim=0)
    return int(torch.argmax(cols.to(torch.int8))) if bool(cols.any()) else valid.shape[1] - 1


class Block(nn.Module):
    """Pre-norm transformer block: causal multi-head attention, then a ReLU feed-forward."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.p = heads, dropout
        self.norm_attn, self.norm_ffn = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ffn = nn.Sequential(
            nn.Linear(d, FFN_MULT * d), nn.ReLU(), nn.Dropout(dropout), nn.Linear(FFN_MULT * d, d)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, d); ``allowed`` (B, 1, T, T) bool: query t may read key s."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm_attn(x)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        p = self.p if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        x = x + self.drop(self.out(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


class SASRec(nn.Module):
    """Causal self-attention over the user's last N items; scores by the tied item table."""

    user_input: ClassVar[UserInput] = "sequence"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int = 64,
        max_len: int = MAX_LEN,
        blocks: int = BLOCKS,
        heads: int = HEADS,
        dropout: float = 0.2,
        loss: Loss = "full",
        negatives: int = 1000,
    ) -> None:
        super().__init__()
        if min(n_users, n_items, factors, max_len, blocks, heads, negatives) < 1:
            raise ValueError("n_users, n_items, factors, max_len, blocks, heads, negatives >= 1")
        if factors % heads:
            raise ValueError(f"factors ({factors}) must be a multiple of heads ({heads})")
        if loss not in ("full", "sampled"):
            raise ValueError(f"loss must be 'full' or 'sampled', got {loss!r}")
        self.n_users, self.n_items, self.max_len, self.d = n_users, n_items, max_len, factors
        self.loss, self.negatives = loss, negatives
        self.item_emb = nn.Embedding(n_items + 1, factors, padding_idx=n_items)
        self.pos_emb = nn.Embedding(max_len, factors)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(factors, heads, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(factors)
        self.register_buffer("history", torch.full((n_users, max_len), n_items, dtype=torch.int32))
        nn.init.normal_(self.item_emb.weight, 0.0, INIT_STD)
        nn.init.normal_(self.pos_emb.weight, 0.0, INIT_STD)
        # the padding row is never read (padding inputs are zeroed), so re-initialising it
        # (build_model's init_std) changes nothing

    @classmethod
    def from_config(cls, c: ModelConfig) -> SASRec:
        """``factors`` is d, ``dropout`` everywhere, ``loss`` ("auto": full softmax up to
        ``FULL_SOFTMAX_MAX_ITEMS`` items, sampled above), ``negatives`` for the sampled loss;
        ``length`` is N (``MAX_LEN`` when None); blocks and heads are this module's
        constants (``layers`` is ignored)."""
        loss = c.loss
        if loss == "auto":
            loss = "full" if c.n_items <= FULL_SOFTMAX_MAX_ITEMS else "sampled"
        return cls(
            c.n_users,
            c.n_items,
            c.factors,
            max_len=c.length or MAX_LEN,
            dropout=c.dropout,
            loss=loss,  # type: ignore[arg-type]
            negatives=c.negatives,
        )

    # -- the sequence encoder
    def encode(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``seq`` (B, T) items, oldest first, padding anywhere outside [0, n_items) ->
        (outputs (B, T, d), valid (B, T)). Only the last ``max_len`` columns are read."""
        seq = seq[:, -self.max_len :].long()
        valid = (seq >= 0) & (seq < self.n_items)
        pos = (valid.cumsum(dim=1) - 1).clamp_min(0)
        x = self.item_emb(torch.where(valid, seq, self.n_items)) + self.pos_emb(pos)
        x = self.drop(x * valid.unsqueeze(-1))
        t = seq.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=seq.device)
        allowed = ((causal & valid[:, None, :]) | eye).unsqueeze(1)  # a padding row sees itself
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x), valid

    def user_vectors_from_sequences(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, T) chronological items -> (B, d): the output at each row's latest real item
        (the zero vector for a row without any)."""
        seq = seq[:, -self.max_len :]
        if seq.shape[1] == 0:
            seq = torch.full((len(seq), 1), self.n_items, dtype=seq.dtype, device=seq.device)
        start = leading_padding((seq >= 0) & (seq < self.n_items))
        h, valid = self.encode(seq[:, start:])
        last = h.shape[1] - 1 - torch.argmax(valid.flip(1).to(torch.int8), dim=1)
        out = h[torch.arange(len(h), device=h.device), last]
        return out * valid.any(dim=1, keepdim=True)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        flat = self.user_vectors_from_sequences(self.history[users.reshape(-1)])
        return flat.reshape(*users.shape, self.d)

    # -- scoring
    def output_table(self) -> torch.Tensor:
        return self.item_emb.weight[: self.n_items]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Broadcasting like every model: users (B,) with items (B,), or (B, 1) with (B, C)."""
        return (self.user_vectors(users) * self.item_emb(items)).sum(dim=-1)

    @torch.no_grad()
    def score_all(self, users: torch.Tensor, chunk_rows: int = CHUNK_ROWS) -> torch.Tensor:
        """(B,) -> (B, n_items): one matrix product."""
        return self.user_vectors(users) @ self.output_table().T

    # -- the protocol
    @property
    def history_len(self) -> int:
        return self.max_len

    def example_losses(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """``inputs``, ``targets`` (B, T): chronological, right-aligned, ``targets[:, t]`` the
        item after ``inputs[:, t]``. Per sequence: its real positions' losses summed, / N."""
        inputs, targets = inputs[:, -self.max_len :], targets[:, -self.max_len :]
        valid_in = (inputs >= 0) & (inputs < self.n_items)
        start = leading_padding(valid_in)
        h, valid = self.encode(inputs[:, start:])
        targets = targets[:, start:].long()
        mask = valid & (targets >= 0) & (targets < self.n_items)
        rows = torch.arange(len(inputs), device=inputs.device)[:, None].expand_as(mask)[mask]
        hs, t, table = h[mask], targets[mask], self.output_table()
        if self.loss == "full":
            ce = F.cross_entropy(hs @ table.T, t, reduction="none")
        else:
            neg = torch.randint(0, self.n_items, (self.negatives,), device=hs.device)
            pos_logit = (hs * table[t]).sum(dim=-1, keepdim=True)
            neg_logits = (hs @ table[neg].T).masked_fill(neg[None, :] == t[:, None], -torch.inf)
            logits = torch.cat([pos_logit, neg_logits], dim=1)
            ce = F.cross_entropy(logits, torch.zeros_like(t), reduction="none")
        losses = torch.zeros(len(inputs), device=h.device, dtype=ce.dtype)
        return losses.index_add(0, rows, ce) / self.max_len

    def with_inputs(self, inter: Interactions) -> SASRec:
        """A view of this model (parameters shared) whose ``history`` holds each user's last N
        items of ``inter``; this model is left untouched."""
        check_index_spaces(self, inter)
        view = copy.copy(self)  # shallow: parameter and submodule dicts are shared
        view._buffers = dict(self._buffers)
        hist = build_histories(inter, self.max_len).flip(1).to(torch.int32)  # oldest first
        view._buffers["history"] = hist.to(self.history.device)
        return view

    @torch.no_grad()
    def score_new_user(self, liked: torch.Tensor, fold: FoldInConfig) -> torch.Tensor:
        """The liked list (most important first) read as a sequence whose latest item is the
        most important one: one forward pass, nothing written (``fold`` is not needed)."""
        liked = torch.as_tensor(liked, dtype=torch.int64, device=self.item_emb.weight.device)
        seq = liked.reshape(-1)[: self.max_len].flip(0)[None]
        return (self.user_vectors_from_sequences(seq) @ self.output_table().T)[0]

    @torch.no_grad()
    def item_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``item_vectors()`` of ``ids`` only: (..., d) unit rows."""
        return F.normalize(self.item_emb.weight[ids], dim=-1)

    def item_vectors(self) -> torch.Tensor:
        """(n_items, d) unit rows of the tied item table, for "similar movies"."""
        return self.item_rows(torch.arange(self.n_items, device=self.item_emb.weight.device))

    @torch.no_grad()
    def explain(self, inputs: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The cosine of the tied item vectors between each input item and each target.
        Not an exact attribution: the score passes through attention and feed-forward
        layers, where no input has a fixed share (attention weights are not one either);
        similarity in the table both ends read is the simple, honest answer."""
        return cosine_contributions(self.item_rows, self.n_items, inputs, items)
