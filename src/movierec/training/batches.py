"""Batches as Lightning iterates them: a fresh epoch per pass, fixed validation chunks,
and the sampled validation figures every epoch reports.

Validation: the validation item against 99 unseen candidates drawn once with ``eval_seed``
(as ``evaluate.holdout(split, part="validation", seed=eval_seed)`` draws them), on at most
``val_users`` users (a fixed random subset: HR@10's standard error is ~0.003 at 20,000).
HR@10 and NDCG@10 are counted by ``movierec.metrics``, as every evaluation counts them
(ties at their expectation over a random order).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from movierec import metrics
from movierec.sampling import sample_candidates
from movierec.split import Split
from movierec.training.ranks import piece

VAL_K = 10
VAL_BATCH_ROWS = 1 << 16  # (user, candidate) pairs per validation step (CPU cache-friendly)


class EpochBatches:
    """Re-iterable over batches; each ``iter()`` builds a fresh epoch with ``make_epoch``.

    Batches of ``batch_size`` rows, or of the given ``sizes`` (a rank's pieces of each step).
    """

    def __init__(
        self,
        make_epoch: Callable[[], tuple[torch.Tensor, ...]],
        n_rows: int,
        batch_size: int,
        sizes: np.ndarray | None = None,
    ) -> None:
        self.make_epoch, self.n_rows, self.batch_size = make_epoch, n_rows, batch_size
        self.sizes = sizes

    def __len__(self) -> int:
        if self.sizes is not None:
            return int(self.sizes.size)
        return math.ceil(self.n_rows / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        columns = self.make_epoch()
        if self.sizes is not None:
            yield from zip(*(c.split(self.sizes.tolist()) for c in columns), strict=True)
            return
        for s in range(0, columns[0].numel(), self.batch_size):
            yield tuple(c[s : s + self.batch_size] for c in columns)


class Fixed:
    """A fixed sequence of batches, iterated whole every epoch (one loader to Lightning)."""

    def __init__(self, batches: list[tuple[torch.Tensor, ...]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return iter(self.batches)


def validation_batches(
    split: Split, seed: int, device: torch.device, max_users: int | None = None
) -> Fixed:
    """(users (B,), items (B, 1 + 99)) chunks: the validation item first, then candidates.

    Candidates come from ``sample_candidates(split.seen_anywhere(), users,
    default_rng(seed))``, as in ``evaluate.holdout(split, part="validation", seed=seed)``.
    With ``max_users``, a fixed random subset of that many users (drawn first from the same
    generator) stands in for all of them.
    """
    v = split.validation
    if not len(v):
        return Fixed([])
    rng = np.random.default_rng(seed)
    if max_users is not None and len(v) > max_users:
        v = v.subset(np.sort(rng.choice(len(v), max_users, replace=False)))
    users = v.users.astype(np.int64)
    cand = sample_candidates(split.seen_anywhere(), users, rng)
    items = np.concatenate([v.items[:, None].astype(np.int64), cand], axis=1)
    step = max(1, VAL_BATCH_ROWS // items.shape[1])
    u, i = torch.as_tensor(users, device=device), torch.as_tensor(items, device=device)
    return Fixed([(u[s : s + step], i[s : s + step]) for s in range(0, len(u), step)])


def shard_batches(batches: Fixed, world: int, rank: int, device: torch.device) -> Fixed:
    """``rank``'s piece of every batch (same count of batches on every rank), on ``device``."""
    if world == 1:
        return Fixed([tuple(t.to(device) for t in b) for b in batches])
    out = []
    for b in batches:
        start, size = piece(len(b[0]), world, rank)
        out.append(tuple(t[int(start) : int(start + size)].to(device) for t in b))
    return Fixed(out)


def sampled_sums(logits: torch.Tensor, k: int = VAL_K) -> tuple[float, float]:
    """Sums over rows (column 0 the target, the rest its candidates) of HR@k and NDCG@k."""
    s = logits.detach().float().cpu().numpy()
    ranks = metrics.rank_of_target(s[:, 0], s[:, 1:])
    ties = metrics.ties_of_target(s[:, 0], s[:, 1:])
    n = len(s)
    return n * metrics.hit_rate(ranks, k, ties), n * metrics.ndcg(ranks, k, ties)
