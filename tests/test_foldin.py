"""Fold-in reads the shared model and writes nothing, and fits what it always fitted."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from movierec.foldin import FoldInConfig, fold_in, score_folded
from movierec.models import ModelConfig, build_model

KINDS = ("gmf", "mlp", "neumf")
LIKED = np.array([3, 17, 17, 40, 8])
CONFIG = FoldInConfig(steps=15)


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(kind, n_users=30, n_items=50, factors=8, layers=(16, 8), init_std=0.3)
    return build_model(config).eval()


def _params(rows):
    """Rows keyed as ``user_tables()`` keys them, keyed by the tables' parameter names."""
    return {f"{n}.user.weight": r for n, r in rows.items()}


def _reference_fold_in(model, liked, config):
    """The algorithm as it was: the user tables swapped for trainable rows with
    ``functional_call``; here on a private copy of the model, which nobody else reads."""
    model = copy.deepcopy(model).eval()
    liked_t = torch.as_tensor(np.unique(liked))
    n_items, gen = model.n_items, torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        prior = {n: t.mean(0, keepdim=True) for n, t in model.user_tables().items()}
    rows = {n: p.clone().requires_grad_(True) for n, p in prior.items()}
    frozen = {n: p.detach() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(rows.values(), lr=config.lr)
    is_liked = torch.zeros(n_items, dtype=torch.bool)
    is_liked[liked_t] = True
    n_neg = config.negatives * liked_t.numel()
    labels = torch.cat([torch.ones(liked_t.numel()), torch.zeros(n_neg)])
    for _ in range(config.steps):
        neg = torch.randint(0, n_items, (n_neg,), generator=gen)
        weight = torch.cat([torch.ones(liked_t.numel()), (~is_liked[neg]).float()])
        items = torch.cat([liked_t, neg])
        logits = functional_call(model, frozen | _params(rows), (torch.zeros_like(items), items))
        loss = F.binary_cross_entropy_with_logits(logits, labels, weight=weight)
        pull = sum(((rows[n] - prior[n]) ** 2).sum() for n in rows)
        opt.zero_grad()
        (loss + config.l2 * pull).backward()
        opt.step()
    return {n: r.detach() for n, r in rows.items()}


@pytest.mark.parametrize("kind", KINDS)
def test_score_user_rows_is_forward_with_the_users_rows(kind):
    model = _model(kind)
    users, items = torch.tensor([0, 5, 29]), torch.arange(50)
    rows = {n: t[users][:, None, :] for n, t in model.user_tables().items()}
    with torch.no_grad():
        expected = model(users[:, None], items[None, :].expand(3, -1))
        got = model.score_user_rows(rows, items[None, :])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("training", [False, True])
def test_fold_in_never_writes_the_model(kind, training):
    """Not even for a moment: every submodule call during fold-in sees the original
    parameter tensors (same storage, same shape) and the original training flags."""
    model = _model(kind).train(training)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    storage = {n: (p.data_ptr(), tuple(p.shape)) for n, p in model.named_parameters()}
    seen = []

    def check(module, args):
        now = {n: (p.data_ptr(), tuple(p.shape)) for n, p in model.named_parameters()}
        seen.append(now == storage and all(m.training == training for m in model.modules()))

    hooks = [m.register_forward_pre_hook(check) for m in model.modules()]
    try:
        fold_in(model, LIKED, CONFIG)
    finally:
        for h in hooks:
            h.remove()
    assert seen and all(seen)
    assert model.training == training
    for n, p in model.named_parameters():
        assert p.grad is None, n
        assert torch.equal(p.detach(), before[n]), n


@pytest.mark.parametrize("kind", KINDS)
def test_fold_in_gives_what_the_parameter_swap_gave(kind):
    model = _model(kind)
    with torch.inference_mode():  # as a caller in a request may be
        rows = fold_in(model, LIKED, CONFIG)
    expected = _reference_fold_in(model, LIKED, CONFIG)
    assert rows.keys() == expected.keys()
    for n in rows:
        assert rows[n].shape == (1, expected[n].shape[1])
        torch.testing.assert_close(rows[n], expected[n], rtol=1e-4, atol=1e-5)
    args = (torch.zeros(50, dtype=torch.long), torch.arange(50))
    with torch.no_grad():
        reference = functional_call(copy.deepcopy(model), _params(expected), args).numpy()
    np.testing.assert_allclose(score_folded(model, rows), reference, rtol=1e-4, atol=1e-5)


def test_fold_in_refuses_an_empty_list():
    with pytest.raises(ValueError, match="at least one"):
        fold_in(_model("gmf"), np.array([], dtype=np.int64))
