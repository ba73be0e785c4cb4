"""Numpy in, numpy out: ``TorchScorer`` turns any model (``movierec.models.protocol``) into
the ``Scorer`` that evaluation, recommendation and batch scoring use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from movierec.models.protocol import InputPart, Model, inputs_for
from movierec.split import Split

CHUNK_ROWS = 1 << 13  # (user, item) pairs per chunk on a CPU: 2 MB at width 64, fits L2
CUDA_CHUNK_ROWS = 1 << 22  # on a GPU, larger chunks keep it busy


@dataclass(frozen=True)
class Bounded:
    """Approximate scores (B, n_items) with ``|scores[u, i] - exact| <= err_users[u] +
    err_items[i]``: what a ranking needs to settle most items without exact scores."""

    scores: torch.Tensor | np.ndarray  # a tensor from the models, numpy from TorchScorer
    err_users: np.ndarray  # (B,) float64
    err_items: np.ndarray  # (n_items,) float64


@dataclass
class TorchScorer:
    """Numpy in, numpy out: the ``Scorer`` protocol over any model of this module."""

    model: nn.Module
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    chunk_rows: int | None = None  # pairs per forward; None: CHUNK_ROWS, CUDA_CHUNK_ROWS on cuda

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        self.model = self.model.to(self.device).eval()
        if self.chunk_rows is None:
            self.chunk_rows = CUDA_CHUNK_ROWS if self.device.type == "cuda" else CHUNK_ROWS

    @property
    def n_users(self) -> int:
        return int(self.model.n_users)

    @property
    def n_items(self) -> int:
        return int(self.model.n_items)

    def _index(self, values: np.ndarray, size: int, what: str) -> torch.Tensor:
        values = np.asarray(values)
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{what} indices must lie in [0, {size})")
        return torch.as_tensor(values.astype(np.int64, copy=False), device=self.device)

    @torch.inference_mode()
    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``users`` (B,), ``items`` (B, C) -> float32 logits (B, C)."""
        items = np.asarray(items)
        if items.ndim != 2 or items.shape[0] != np.asarray(users).shape[0]:
            raise ValueError("items must have shape (len(users), C)")
        u = self._index(users, self.n_users, "user")
        i = self._index(items, self.n_items, "item")
        out = np.empty(items.shape, dtype=np.float32)
        step = max(1, self.chunk_rows // max(items.shape[1], 1))
        for s in range(0, len(u), step):
            out[s : s + step] = self.model(u[s : s + step, None], i[s : s + step]).float().cpu()
        return out

    @torch.inference_mode()
    def score_all(self, users: np.ndarray) -> np.ndarray:
        """``users`` (B,) -> float32 logits for every item (B, n_items)."""
        u = self._index(users, self.n_users, "user")
        return self.model.score_all(u, chunk_rows=self.chunk_rows).float().cpu().numpy()

    def bounded_scorer(self) -> Callable[[np.ndarray, np.ndarray], Bounded] | None:
        """``score_all`` to within ``Bounded``'s error, where the model has a faster way on
        this device: ``score(users, out)`` fills ``out`` (B, n_items) float32 and returns
        it as ``scores``; None otherwise."""
        make = getattr(self.model, "bounded_scorer", None)
        if make is None or self.device.type != "cpu":
            return None
        with torch.inference_mode():
            inner = make()
        if inner is None:
            return None

        @torch.inference_mode()
        def score(users: np.ndarray, out: np.ndarray) -> Bounded:
            if out.dtype != np.float32 or out.shape != (len(users), self.n_items):
                raise ValueError(f"out must be float32 of shape {(len(users), self.n_items)}")
            got = inner(self._index(users, self.n_users, "user"), torch.from_numpy(out))
            return Bounded(out, got.err_users, got.err_items)

        return score


def scorer_for(model: Model, split: Split, part: InputPart, device=None) -> TorchScorer:
    """A ``TorchScorer`` over ``model`` with the users' inputs ``part`` needs ("validation":
    train; "test": train + validation; "all": serving). ``model`` itself is not modified."""
    if device is None:
        device = next(iter(model.parameters())).device
    return TorchScorer(model.with_inputs(inputs_for(split, part)), device)
