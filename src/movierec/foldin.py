"""Fold a new person into a trained model: fit their user vectors against the frozen item side.

A model whose user is an id (``movierec.models.ncf``) represents a user only through its
user embedding tables (``model.user_tables()``, keyed by part). Folding in fits one fresh
row per table, started at the mean trained user, with a few Adam steps of the training
loss: the liked movies are positives, uniformly drawn unseen movies are negatives, with an
L2 pull towards the mean user so that a short list does not overfit. The model scores those
rows through its pure ``score_user_rows(rows, items)``; the gradient is taken with respect
to the rows alone (``torch.autograd.grad``), so the result is the trained model's own
opinion of that person.

Read-only by construction: the model's parameters, their ``.grad`` and its training flag are
never written, so requests may fold people in while others score with the same module in
other threads. Dropout follows the module's mode (a served model is in eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FoldInConfig:
    steps: int = 40  # Adam steps on the new user's vectors
    lr: float = 0.05  # Adam learning rate
    negatives: int = 8  # unseen movies drawn per liked movie, fresh at every step
    l2: float = 1e-2  # pull towards the mean trained user, per liked movie
    seed: int = 0  # negatives


def fold_in(
    model: nn.Module, liked: np.ndarray, config: FoldInConfig = FoldInConfig()
) -> dict[str, torch.Tensor]:
    """Per user table of ``model`` (one with ``user_tables()`` and ``score_user_rows``), one
    fitted row (shape ``(1, f)``) for a person who liked ``liked``.
    Leaves ``model`` untouched (see the module docstring); runs under inference mode too."""
    liked_t = torch.as_tensor(np.unique(np.asarray(liked, dtype=np.int64)))
    if liked_t.numel() == 0:
        raise ValueError("fold-in needs at least one liked movie")
    n_items = int(model.n_items)
    with torch.inference_mode(False), torch.enable_grad():
        with torch.no_grad():
            prior = {n: t.mean(0, keepdim=True) for n, t in model.user_tables().items()}
        rows = {n: p.clone().requires_grad_(True) for n, p in prior.items()}
        _fit(model, rows, prior, liked_t, n_items, config)
    return {n: r.detach() for n, r in rows.items()}


def _fit(
    model: nn.Module,
    rows: dict[str, torch.Tensor],
    prior: dict[str, torch.Tensor],
    liked: torch.Tensor,
    n_items: int,
    config: FoldInConfig,
) -> None:
    """Adam steps on ``rows`` in place; gradients reach ``rows`` only, never the model."""
    gen = torch.Generator().manual_seed(config.seed)  # on the CPU: the same draws anywhere
    params = list(rows.values())
    device = params[0].device
    opt = torch.optim.Adam(params, lr=config.lr)
    is_liked = torch.zeros(n_items, dtype=torch.bool)
    is_liked[liked] = True
    n_neg = config.negatives * liked.numel()
    labels = torch.cat([torch.ones(liked.numel()), torch.zeros(n_neg)]).to(device)
    for _ in range(config.steps):
        neg = torch.randint(0, n_items, (n_neg,), generator=gen)
        weight = torch.cat([torch.ones(liked.numel()), (~is_liked[neg]).float()]).to(device)
        logits = model.score_user_rows(rows, torch.cat([liked, neg]).to(device))
        loss = F.binary_cross_entropy_with_logits(logits, labels, weight=weight)
        pull = sum(((rows[n] - prior[n]) ** 2).sum() for n in rows)
        grads = torch.autograd.grad(loss + config.l2 * pull, params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        opt.step()


@torch.inference_mode()
def score_folded(model: nn.Module, rows: dict[str, torch.Tensor]) -> np.ndarray:
    """Scores of every item for the folded-in user: ``(n_items,)`` float32."""
    device = next(iter(rows.values())).device
    logits = model.score_user_rows(rows, torch.arange(int(model.n_items), device=device))
    return logits.reshape(-1).float().cpu().numpy()
