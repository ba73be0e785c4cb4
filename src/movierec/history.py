"""The "history" model: an NCF-family scorer whose user tower reads the user's recent items.

    user_vec(u) = sum_k w_k * E[h_k] / sum_{k present} w_k   (h_k: k-th latest item, k=0 latest)
    score(u, i) = user_vec(u) . Q_i + b_i

``E`` (``item_in``) and ``Q`` (``item_out``) are separate item embeddings; ``w_k =
exp(position_logits[k])`` is one learned weight per recency position (initialised to
``0.8 ** k``) and is normalised over the positions a user actually has. There is no user
embedding table: a user *is* their last ``L`` items. Those items live in the ``history``
buffer ``(n_users, L)`` (padding id ``n_items``), so they are part of ``state_dict`` and travel
with the weights (safetensors) like any parameter.

Which items the buffer holds decides what is being scored:

- validation: history = train items (``history_for(split, "validation")``);
- test: train + validation (``history_for(split, "test")``; what ``fit_history`` leaves);
- serving a known user: every item (``history_for(split, "all")``).

Cold start needs no optimisation: a liked list is a history, ``score_items_for_history``
scores it in one forward pass.

Training (``fit_history``) is causal: every training positive at chronological position
``t`` of its user is predicted from the (up to ``L``) items before it, against 64 fresh
uniform unseen negatives per positive, with a sampled-softmax (cross-entropy, positive at
index 0) loss. Histories are gathered per batch from the flattened chronological sequence
by index arithmetic, so memory stays O(rows).

This module imports ``movierec.models`` / ``movierec.train`` only inside functions, so that
``models.py`` may import ``HistoryModel`` at its top to register it in ``MODELS``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from movierec.data import Interactions
from movierec.sampling import sample_negatives, seen_keys
from movierec.split import Split, concat

if TYPE_CHECKING:
    from movierec.models import ModelConfig
    from movierec.train import TrainConfig, TrainResult

HISTORY_LEN = 20  # L: items of history per user
POSITION_DECAY = 0.8  # initial weight of recency position k is POSITION_DECAY ** k
INIT_STD = 0.05  # item embeddings ~ N(0, INIT_STD) unless build_model's init_std overrides
CHUNK_ROWS = 1 << 19  # same meaning as models.CHUNK_ROWS (unused: score_all is one matmul)

# train.PRESETS["history"]. Chosen on ml-latest-small validation sampled HR@10, mean of
# seeds 0-2, among d in {64, 128}, L in {10, 20, 50}, batch in {512, 1024}, negatives in
# {16, 64}, lr in {2e-3, 5e-3} (bench/RESULTS.md, "Our models"): 0.787 against 0.773 for
# the previous preset (batch 1024, 16 negatives).
PRESET: dict = dict(
    factors=64,
    layers=(),
    init_std=None,  # keep the model's own N(0, 0.05) init
    epochs=20,
    batch_size=512,
    lr=5e-3,
    negatives=64,
    patience=3,
)

HistoryPart = Literal["validation", "test", "all"]


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

    def before(self, positions: np.ndarray, length: int) -> np.ndarray:
        """(B, length) items preceding flat ``positions`` (exclusive), latest first,
        padded with ``n_items``; never the item at ``positions`` nor a later one."""
        positions = np.asarray(positions, dtype=np.int64)
        idx = positions[:, None] - 1 - np.arange(length, dtype=np.int64)[None, :]
        ok = idx >= self.starts[self.users[positions]][:, None]
        return np.where(ok, self.items[np.clip(idx, 0, None)], self.n_items)

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


def history_for(split: Split, part: HistoryPart) -> Interactions:
    """The interactions a user's history is built from when scoring ``part``."""
    if part == "validation":
        return split.train
    if part == "test":
        return concat(split.train, split.validation)
    if part == "all":
        return split.all()
    raise ValueError(f"part must be 'validation', 'test' or 'all', got {part!r}")


# ----------------------------------------------------------------------------- the model


class HistoryModel(nn.Module):
    """Score = (position-weighted mean of the user's last L input embeddings) . Q_i + b_i."""

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
        """``factors`` is d; L is ``HISTORY_LEN`` (``layers`` and the rest are ignored)."""
        return cls(c.n_users, c.n_items, c.factors, HISTORY_LEN)

    # -- the user side
    def user_vectors_from_items(self, hist: torch.Tensor) -> torch.Tensor:
        """``hist`` (..., m) item ids, most recent / most important first, ``n_items`` (or any
        id outside [0, n_items)) as padding -> user vectors (..., d). Columns past L are
        dropped; an all-padding row gives the zero vector (score = item bias)."""
        hist = hist[..., : self.L]
        mask = (hist >= 0) & (hist < self.n_items)
        emb = self.item_in(torch.where(mask, hist, self.pad))
        logits = self.position_logits[: hist.shape[-1]]
        w = torch.exp(logits - logits.max()) * mask  # stable; exact after normalisation
        w = w / w.sum(dim=-1, keepdim=True).clamp_min(1e-12)
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

    # -- the buffer
    @torch.no_grad()
    def set_history(
        self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray
    ) -> HistoryModel:
        """Rebuild every user's history from these interactions (latest first, last L);
        users absent from them get an empty history."""
        users = np.asarray(users)
        inter = Interactions(
            users.astype(np.int32),
            np.asarray(items).astype(np.int32),
            np.asarray(timestamps).astype(np.int64),
            np.ones(users.size, dtype=np.float32),
            self.n_users,
            self.n_items,
        )
        return self.set_history_from(inter)

    @torch.no_grad()
    def set_history_from(self, inter: Interactions) -> HistoryModel:
        if (inter.n_users, inter.n_items) != (self.n_users, self.n_items):
            raise ValueError("interactions and model index spaces differ")
        self.history.copy_(build_histories(inter, self.L))
        return self

    def with_history(self, inter: Interactions) -> HistoryModel:
        """A view of this model (same parameters, shared) with its own history buffer built
        from ``inter``; this model is left untouched. E.g. score validation and test with one
        trained model: ``model.with_history(history_for(split, "validation"))``."""
        if (inter.n_users, inter.n_items) != (self.n_users, self.n_items):
            raise ValueError("interactions and model index spaces differ")
        view = copy.copy(self)  # shallow: parameter and submodule dicts are shared
        view._buffers = dict(self._buffers)
        view._buffers["history"] = build_histories(inter, self.L).to(self.history.device)
        return view

    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        """(n_items, 2d) unit-length item representations for "similar movies": the input and
        output embeddings, each normalised, side by side."""
        parts = [self.item_in.weight[: self.n_items], self.item_out.weight]
        return F.normalize(torch.cat([F.normalize(p, dim=1) for p in parts], dim=1), dim=1)


def scorer_for(model: HistoryModel, split: Split, part: HistoryPart, device=None):
    """A ``TorchScorer`` over ``model`` with the history ``part`` needs ("validation": train;
    "test": train + validation; "all": serving). ``model`` itself is not modified."""
    from movierec.models import TorchScorer

    device = model.history.device if device is None else device
    return TorchScorer(model.with_history(history_for(split, part)), device)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class CausalRows:
    """Training examples: each train positive with the flat position of its row in the
    chronological sequence (its history is what precedes it). Sorted by user."""

    seq: Sequences
    seen: object  # scipy CSR: never sampled as a negative
    seen_keys: np.ndarray

    @classmethod
    def from_split(cls, split: Split) -> CausalRows:
        seen = split.seen_anywhere()
        return cls(Sequences.from_interactions(split.train), seen, seen_keys(seen))

    def __len__(self) -> int:
        return int(self.seq.items.size)

    def epoch(self, seed: int, epoch: int, negatives: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions in shuffled order, their negatives (P, negatives)).

        Negatives are drawn for the user-sorted rows (fast path of ``sample_negatives``)
        with ``default_rng([seed, epoch])``, then shuffled along with the rows."""
        rng = np.random.default_rng([seed, epoch])
        neg = sample_negatives(self.seen, self.seq.users, negatives, rng, keys=self.seen_keys)
        perm = rng.permutation(len(self))
        return perm, neg[perm]


def fit_history(
    split: Split,
    config: TrainConfig,
    *,
    progress: bool = True,
    run_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a ``HistoryModel`` (``config.model == "history"``); keep the epoch with the best
    validation sampled HR@10 (history = train only). The returned model's buffer holds
    train + validation histories: ready for test evaluation.

    Uses ``config``'s factors (d), epochs, batch_size, lr, weight_decay, negatives, seed,
    eval_seed, patience and device. ``run_dir``: ``train_log.csv`` and, after every epoch,
    ``train.CHECKPOINT`` (weights, Adam state, the epoch log, the best epoch's weights; see
    ``movierec.checkpoint``) are written there. ``resume``: continue from that checkpoint
    as ``train.fit`` does (verified first; a fresh start when there is none). Epoch ``e``'s
    negatives and order depend only on ``(seed, e)``, so a resumed run replays the epochs
    the uninterrupted one would have run.
    """
    from movierec import checkpoint as checkpoint_state
    from movierec.models import build_model
    from movierec.train import (
        CHECKPOINT,
        TRAIN_LOG,
        EpochLog,
        TrainResult,
        remove_work_files,
        resolve_device,
        resume_checkpoint,
        sampled_hits,
        validation_batches,
        write_train_log,
    )

    if config.model != "history":
        raise ValueError(f"fit_history trains model 'history', got {config.model!r}")
    started = time.perf_counter()
    device = resolve_device(config.device)
    rows = CausalRows.from_split(split)
    config = config.resolved(rows_per_epoch=len(rows) * (1 + config.negatives))
    model_config = config.model_config(split.n_users, split.n_items)
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    if not isinstance(model, HistoryModel):
        raise TypeError("models.MODELS['history'] must build a HistoryModel")
    model.set_history_from(history_for(split, "validation")).to(device)
    val = validation_batches(split, config.eval_seed, device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    run_dir = Path(run_dir) if run_dir is not None else None
    log_path = run_dir / TRAIN_LOG if run_dir is not None else None
    fingerprint = checkpoint_state.data_fingerprint(split) if run_dir is not None else None

    history: list[EpochLog] = []
    best_state, best_epoch, stopped_early = None, 0, False
    saved = resume_checkpoint(run_dir, config, fingerprint) if resume else None
    if saved is not None:
        state = saved[checkpoint_state.STATE]
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        history = [EpochLog(**h) for h in state["history"]]
        best_state, best_epoch = state["best_state"], int(state["best_epoch"])
        stopped_early = bool(state["stopped_early"])
    elif run_dir is not None:
        remove_work_files(run_dir)
    first = config.epochs if stopped_early else len(history)
    for epoch in range(first, config.epochs):
        t0 = time.perf_counter()
        perm, negs = rows.epoch(config.seed, epoch, config.negatives)
        model.train()
        t_train, loss_sum, steps = time.perf_counter(), torch.zeros((), device=device), 0
        for s in range(0, perm.size, config.batch_size):
            pos = perm[s : s + config.batch_size]
            hist = torch.as_tensor(rows.seq.before(pos, model.L), device=device)
            items = np.concatenate([rows.seq.items[pos, None], negs[s : s + pos.size]], axis=1)
            items = torch.as_tensor(items.astype(np.int64), device=device)
            logits = model.score_vectors(model.user_vectors_from_items(hist)[:, None], items)
            loss = F.cross_entropy(logits, torch.zeros(pos.size, dtype=torch.long, device=device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            steps += 1
        train_s = time.perf_counter() - t_train

        model.eval()
        hits = gain = 0.0
        with torch.no_grad():
            for users, items in val:
                h, g = sampled_hits(model(users[:, None], items))
                hits, gain = hits + float(h), gain + float(g)
        n_val = len(split.validation)
        hr, ndcg = (hits / n_val, gain / n_val) if n_val else (math.nan, math.nan)
        row = EpochLog(
            epoch=epoch + 1,
            loss=float(loss_sum) / max(steps, 1),
            val_hr10=hr,
            val_ndcg10=ndcg,
            rows_per_s=perm.size * (1 + config.negatives) / max(train_s, 1e-9),
            seconds=time.perf_counter() - t0,
        )
        history.append(row)
        if progress:
            print(
                f"epoch {row.epoch:>3}  loss {row.loss:.4f}  val HR@10 {hr:.4f}  "
                f"NDCG@10 {ndcg:.4f}  {row.seconds:.1f}s",
                flush=True,
            )
        if best_state is None or not (hr <= history[best_epoch - 1].val_hr10):
            best_epoch = row.epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        stopped_early = config.patience is not None and row.epoch - best_epoch >= config.patience
        if run_dir is not None:
            write_train_log(log_path, history)
            state = {
                "config": config.to_dict(),
                checkpoint_state.DATA: fingerprint,
                "history": [dataclasses.asdict(h) for h in history],
                "best_epoch": best_epoch,
                "best_state": best_state,
                "stopped_early": stopped_early,
            }
            checkpoint_state.save(
                {
                    checkpoint_state.STATE: state,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                },
                run_dir / CHECKPOINT,
            )
        if stopped_early:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.set_history_from(history_for(split, "test")).eval()
    return TrainResult(
        model=model,
        config=config,
        model_config=model_config,
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        device=device,
        seconds=time.perf_counter() - started,
    )


__all__ = [
    "HISTORY_LEN",
    "PRESET",
    "CausalRows",
    "HistoryModel",
    "Sequences",
    "build_histories",
    "chronological_order",
    "fit_history",
    "history_for",
    "scorer_for",
]
