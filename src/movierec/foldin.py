"""Fold a new person into a trained model: fit their user vectors against the frozen item side.

A model of ``movierec.models`` represents a user only through its user embedding tables
(parameters named ``*user.weight``). Folding in replaces each table by a single trainable
row, starts it at the mean trained user, and runs a few Adam steps of the training loss:
the liked movies are positives, uniformly drawn unseen movies are negatives, with an L2
pull towards the mean user so that a short list does not overfit. Everything else in the
model stays frozen, so the result is the trained model's own opinion of that person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


@dataclass(frozen=True)
class FoldInConfig:
    steps: int = 40  # Adam steps on the new user's vectors
    lr: float = 0.05  # Adam learning rate
    negatives: int = 8  # unseen movies drawn per liked movie, fresh at every step
    l2: float = 1e-2  # pull towards the mean trained user, per liked movie
    seed: int = 0  # negatives


def user_tables(model: nn.Module) -> dict[str, torch.Tensor]:
    tables = {n: p for n, p in model.named_parameters() if n.endswith("user.weight")}
    if not tables:
        raise ValueError(f"{type(model).__name__} has no user embedding to fold a user into")
    return tables


def fold_in(
    model: nn.Module, liked: np.ndarray, config: FoldInConfig = FoldInConfig()
) -> dict[str, torch.Tensor]:
    """Per user table, one fitted row (shape ``(1, f)``) for a person who liked ``liked``."""
    liked_t = torch.as_tensor(np.unique(np.asarray(liked, dtype=np.int64)))
    if liked_t.numel() == 0:
        raise ValueError("fold-in needs at least one liked movie")
    n_items = int(model.n_items)
    gen = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        prior = {n: t.mean(0, keepdim=True) for n, t in user_tables(model).items()}
    rows = {n: p.clone().requires_grad_(True) for n, p in prior.items()}
    frozen = {n: p.detach() for n, p in model.named_parameters()}  # no gradient to the model
    opt = torch.optim.Adam(rows.values(), lr=config.lr)
    is_liked = torch.zeros(n_items, dtype=torch.bool)
    is_liked[liked_t] = True
    n_neg = config.negatives * liked_t.numel()
    labels = torch.cat([torch.ones(liked_t.numel()), torch.zeros(n_neg)])
    was_training = model.training
    model.eval()
    try:
        for _ in range(config.steps):
            neg = torch.randint(0, n_items, (n_neg,), generator=gen)
            weight = torch.cat([torch.ones(liked_t.numel()), (~is_liked[neg]).float()])
            items = torch.cat([liked_t, neg])
            logits = functional_call(model, frozen | rows, (torch.zeros_like(items), items))
            loss = F.binary_cross_entropy_with_logits(logits, labels, weight=weight)
            pull = sum(((rows[n] - prior[n]) ** 2).sum() for n in rows)
            opt.zero_grad()
            (loss + config.l2 * pull).backward()
            opt.step()
    finally:
        model.train(was_training)
    return {n: r.detach() for n, r in rows.items()}


@torch.inference_mode()
def score_folded(model: nn.Module, rows: dict[str, torch.Tensor]) -> np.ndarray:
    """Scores of every item for the folded-in user: ``(n_items,)`` float32."""
    items = torch.arange(int(model.n_items))
    logits = functional_call(model, rows, (torch.zeros(1, 1, dtype=torch.long), items[None, :]))
    return logits.reshape(-1).float().numpy()
