"""The examples of every epoch, made fresh from the seed and the epoch's number.

A model's ``user_input`` (``movierec.models.protocol``) decides what an example is:

- ``"id"`` (``TrainRows``): a (user, item, label) row; an epoch is every training positive
  once plus ``negatives`` fresh unseen items per positive, shuffled together;
- ``"history"`` (``CausalRows``): a training positive at its user's chronological position
  ``t``, its ``negatives`` fresh unseen items, and the (up to ``history_len``) items before
  ``t``, gathered per batch by index arithmetic on the device (memory O(rows));
- ``"sequence"`` (``SequenceRows``): a training user's last ``history_len + 1`` items, read as
  inputs ``[:-1]`` and next-item targets ``[1:]`` (every position is trained); an epoch is
  every such user once, shuffled.

All give ``epoch(seed, epoch, negatives, index=...)``, columns aligned on their first
dimension (one entry per example; ``index`` keeps a rank's examples, in its order), on
their device (``on(device)`` moves them: DDP builds them on the CPU, each rank uses its
own), and ``batch(columns)``, the arguments of the model's ``example_losses``. Epoch
``e`` draws its negatives and shuffle from ``numpy.random.default_rng([seed, e])`` only, so
a resumed run replays exactly the epochs the uninterrupted one would have run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from movierec.models import Model
from movierec.models.history import Sequences
from movierec.sampling import sample_negatives, seen_keys
from movierec.split import Split

DECODE_ROWS = 1 << 22  # epoch rows decoded per chunk (bounded int64 temporaries)


@dataclass(frozen=True)
class TrainRows:
    """The examples of a model whose user is an id: (user, item, label) rows, every training
    positive plus ``negatives`` fresh unseen items per positive, shuffled together."""

    users: np.ndarray  # int64 (P,), ascending: sample_negatives is fast on sorted queries
    keys: np.ndarray  # int64 (P,): user * n_items + item of each positive, ascending
    seen: Any  # scipy CSR (n_users, n_items): every interaction, never sampled as a negative
    seen_keys: np.ndarray  # seen_keys(seen)
    device: torch.device

    @classmethod
    def from_split(cls, split: Split, device: torch.device) -> TrainRows:
        t = split.train
        keys = np.sort(t.users.astype(np.int64) * t.n_items + t.items)
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # np.unique hashes: slow on numpy 2.4
        seen = split.seen_anywhere()
        return cls(keys // t.n_items, keys, seen, seen_keys(seen), device)

    def __len__(self) -> int:
        return int(self.keys.size)

    def n_examples(self, negatives: int) -> int:
        """Examples per epoch: every row is one."""
        return len(self) * (1 + negatives)

    def rows_per_example(self, negatives: int) -> int:
        return 1

    def on(self, device: torch.device) -> TrainRows:
        """These examples, made on ``device``."""
        return dataclasses.replace(self, device=device)

    def batch(self, columns: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """``example_losses``'s arguments from a slice of the epoch: (users, items, labels)."""
        return columns

    def epoch(
        self,
        seed: int,
        epoch: int,
        negatives: int,
        *,
        index: np.ndarray | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """(users, items, labels) of one epoch, shuffled, on the device.

        Negatives are drawn for the user-sorted positives, then all rows are shuffled
        together (one in-place shuffle of packed ``(user * n_items + item) * 2 + label``). ``index``
        keeps only those rows (a rank's ``Shard.index``), in its order.
        """
        rng = np.random.default_rng([seed, epoch])
        n_items, n_pos = self.seen.shape[1], self.keys.size
        neg = sample_negatives(self.seen, self.users, negatives, rng, keys=self.seen_keys)
        # one int64 per row, (user * n_items + item) * 2 + label, shuffled in place: the
        # epoch's peak memory is this array and the outputs (ML-25M shaped: ~2 GB, not ~5)
        rows = np.empty(n_pos * (1 + negatives), dtype=np.int64)
        np.multiply(self.keys, 2, out=rows[:n_pos])
        rows[:n_pos] += 1
        neg_rows = rows[n_pos:].reshape(n_pos, negatives)
        np.multiply(self.users[:, None], n_items, out=neg_rows)
        neg_rows += neg
        neg_rows *= 2
        del neg
        rng.shuffle(rows)
        if index is not None:
            rows = rows[index]
        users = np.empty(rows.size, dtype=np.int32)
        items = np.empty(rows.size, dtype=np.int32)
        labels = np.empty(rows.size, dtype=np.float32)
        for s in range(0, rows.size, DECODE_ROWS):
            key, label = np.divmod(rows[s : s + DECODE_ROWS], 2)
            user = key // n_items
            users[s : s + DECODE_ROWS] = user
            items[s : s + DECODE_ROWS] = key - user * n_items
            labels[s : s + DECODE_ROWS] = label
        del rows
        return tuple(torch.as_tensor(a, device=self.device) for a in (users, items, labels))


@dataclass(frozen=True)
class CausalRows:
    """The examples of a model whose user is their history: each train positive with the
    flat position of its row in the chronological sequence (its history is what precedes
    it) and its negatives. Sorted by user."""

    seq: Sequences
    seen: Any  # scipy CSR: never sampled as a negative
    seen_keys: np.ndarray
    history_len: int
    items: torch.Tensor  # seq.items on the device
    user_start: torch.Tensor  # (N,) flat position where each row's user begins, on the device

    @classmethod
    def from_split(cls, split: Split, device: torch.device, history_len: int) -> CausalRows:
        seq = Sequences.from_interactions(split.train)
        seen = split.seen_anywhere()
        user_start = torch.as_tensor(seq.starts[seq.users], device=device)
        items = torch.as_tensor(seq.items, device=device)
        return cls(seq, seen, seen_keys(seen), history_len, items, user_start)

    def __len__(self) -> int:
        return int(self.seq.items.size)

    def n_examples(self, negatives: int) -> int:
        return len(self)

    def rows_per_example(self, negatives: int) -> int:
        """The positive and its negatives (what rows/s counts)."""
        return 1 + negatives

    def epoch(
        self,
        seed: int,
        epoch: int,
        negatives: int,
        *,
        index: np.ndarray | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat positions (P,), items (P, 1 + negatives): the positive, then its negatives),
        shuffled. Negatives are drawn for the user-sorted rows (fast path of
        ``sample_negatives``) with ``default_rng([seed, epoch])``, then shuffled along with
        the rows."""
        rng = np.random.default_rng([seed, epoch])
        neg = sample_negatives(self.seen, self.seq.users, negatives, rng, keys=self.seen_keys)
        perm = rng.permutation(len(self))
        if index is not None:
            perm = perm[index]
        items = np.concatenate([self.seq.items[perm, None], neg[perm]], axis=1)
        dev = self.items.device
        return torch.as_tensor(perm, device=dev), torch.as_tensor(items, device=dev)

    def on(self, device: torch.device) -> CausalRows:
        """These examples, made and gathered on ``device``."""
        moved = {"items": self.items.to(device), "user_start": self.user_start.to(device)}
        return dataclasses.replace(self, **moved)

    def batch(self, columns: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """(histories (B, history_len), items (B, 1 + negatives)): each example's items before
        its position, latest first, padded with ``n_items``; never its own nor a later one."""
        positions, items = columns
        back = torch.arange(1, self.history_len + 1, device=positions.device)
        idx = positions[:, None] - back
        ok = idx >= self.user_start[positions][:, None]
        pad = torch.full_like(idx, self.seq.n_items)
        return torch.where(ok, self.items[idx.clamp_min(0)], pad), items


@dataclass(frozen=True)
class SequenceRows:
    """The examples of a model whose user is a sequence: one window per training user with at
    least two training items, its last ``history_len + 1`` items oldest first, right-aligned
    (``n_items`` pads the left). An epoch is a fresh permutation of the windows."""

    windows: torch.Tensor  # int32 (S, history_len + 1) on the device
    n_items: int

    @classmethod
    def from_split(cls, split: Split, device: torch.device, history_len: int) -> SequenceRows:
        seq = Sequences.from_interactions(split.train)
        keep = np.diff(seq.starts) >= 2  # one item has no next item to predict
        last = seq.last(history_len + 1)[keep, ::-1]  # latest first -> oldest first
        windows = torch.as_tensor(np.ascontiguousarray(last, dtype=np.int32), device=device)
        return cls(windows, split.n_items)

    def __len__(self) -> int:
        return int(self.windows.shape[0])

    def n_examples(self, negatives: int) -> int:
        return len(self)

    def rows_per_example(self, negatives: int) -> int:
        """A sequence counts as one row (rows/s counts sequences)."""
        return 1

    def epoch(
        self,
        seed: int,
        epoch: int,
        negatives: int,
        *,
        index: np.ndarray | None = None,
    ) -> tuple[torch.Tensor]:
        """(window indices (S,),) shuffled with ``default_rng([seed, epoch])``; ``index``
        keeps a rank's share, in its order. ``negatives`` is not used here: a sampled loss
        draws its own (``SASRec``)."""
        perm = np.random.default_rng([seed, epoch]).permutation(len(self))
        if index is not None:
            perm = perm[index]
        return (torch.as_tensor(perm, device=self.windows.device),)

    def on(self, device: torch.device) -> SequenceRows:
        return dataclasses.replace(self, windows=self.windows.to(device))

    def batch(self, columns: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs (B, history_len), targets (B, history_len)): ``targets[:, t]`` is the item
        after ``inputs[:, t]`` (where the input is still padding the target may be the first
        real item: models train only where the input is real)."""
        (rows,) = columns
        w = self.windows[rows]
        return w[:, :-1], w[:, 1:]


Examples = TrainRows | CausalRows | SequenceRows


def examples_for(model: Model, split: Split, device: torch.device) -> Examples:
    """The kind of examples ``model`` trains on (its ``user_input``), on ``device``."""
    if model.user_input == "history":
        return CausalRows.from_split(split, device, model.history_len)
    if model.user_input == "sequence":
        return SequenceRows.from_split(split, device, model.history_len)
    return TrainRows.from_split(split, device)
