"""Model contracts: shapes, broadcasting, score_all == forward on every item, NeuMF init;
the protocol (``movierec.models.protocol``) on every registered model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _close import assert_scores_close

from movierec.data import Interactions
from movierec.evaluate import Scorer
from movierec.foldin import FoldInConfig
from movierec.models import GMF, MLP, MODELS, Model, ModelConfig, NeuMF, TorchScorer, build_model

N_USERS, N_ITEMS = 11, 23
KINDS = ["gmf", "mlp", "neumf", "tutorial"]  # the NCF family (MODELS may hold more)


def make(kind: str, seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    base = dict(factors=4, layers=(8, 4), init_std=0.5)
    return build_model(ModelConfig(kind, N_USERS, N_ITEMS, **{**base, **kw})).eval()


def all_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    return users, torch.arange(N_ITEMS).repeat(N_USERS)


def test_registry_holds_the_ncf_models() -> None:
    assert set(KINDS) <= set(MODELS)
    assert isinstance(make("gmf"), GMF)
    assert isinstance(make("neumf"), NeuMF)
    assert isinstance(make("tutorial"), MLP)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_gives_one_logit_per_pair_and_broadcasts(kind: str) -> None:
    model = make(kind)
    users, items = all_pairs()
    flat = model(users, items)
    assert flat.shape == (N_USERS * N_ITEMS,) and flat.dtype == torch.float32
    grid = model(torch.arange(N_USERS)[:, None], torch.arange(N_ITEMS).expand(N_USERS, -1))
    assert_scores_close(grid, flat.view(N_USERS, N_ITEMS))  # other shapes, other rounding
    assert flat.std() > 0  # not a constant model


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk_rows", [1, 50, 10**6])
def test_score_all_equals_forward_on_every_item(kind: str, chunk_rows: int) -> None:
    model = make(kind)
    users, items = all_pairs()
    expected = model(users, items).view(N_USERS, N_ITEMS)
    some = torch.tensor([3, 0, 10, 3])
    got = model.score_all(some, chunk_rows=chunk_rows)
    assert got.shape == (4, N_ITEMS) and got.dtype == torch.float32
    assert_scores_close(got, expected[some])


def test_the_tutorial_model_is_embeddings_of_8_then_64_32_1() -> None:
    model = build_model(ModelConfig("tutorial", N_USERS, N_ITEMS, init_std=None))
    tower = model.tower
    assert tower.user.embedding_dim == tower.item.embedding_dim == 8
    assert [(lin.in_features, lin.out_features) for lin in tower.linears] == [(16, 64), (64, 32)]
    assert (model.predict.in_features, model.predict.out_features) == (32, 1)
    # init_std=None keeps torch's N(0, 1) embeddings, as the tutorial had them
    assert 0.7 < float(tower.user.weight.detach().std()) < 1.3


def test_init_std_sets_the_embedding_scale() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig("gmf", 500, 500, factors=16, init_std=0.01))
    assert 0.008 < float(model.mf.user.weight.detach().std()) < 0.012


def test_neumf_from_pretrained_is_the_alpha_mix_of_its_parts() -> None:
    gmf, mlp = make("gmf", seed=1), make("mlp", seed=2, factors=6, layers=(8, 5))
    users, items = all_pairs()
    for alpha in (0.5, 0.2):
        neumf = NeuMF.from_pretrained(gmf, mlp, alpha=alpha).eval()
        mixed = alpha * gmf(users, items) + (1 - alpha) * mlp(users, items)
        assert_scores_close(neumf(users, items), mixed)
        assert neumf.tower.user.embedding_dim == 6 and neumf.mf.user.embedding_dim == 4
    # the parts are copied, not shared
    neumf.mf.user.weight.data.zero_()
    assert gmf.mf.user.weight.abs().sum() > 0


def test_neumf_from_pretrained_rejects_mismatched_parts() -> None:
    gmf = make("gmf")
    other = build_model(ModelConfig("mlp", N_USERS + 1, N_ITEMS))
    with pytest.raises(ValueError, match="index spaces"):
        NeuMF.from_pretrained(gmf, other)
    with pytest.raises(ValueError, match="alpha"):
        NeuMF.from_pretrained(gmf, make("mlp"), alpha=1.5)


@pytest.mark.parametrize(
    "kw",
    [dict(kind="svd"), dict(factors=0), dict(layers=(8, 0)), dict(dropout=1.0), dict(n_users=0)],
)
def test_model_config_rejects_bad_values(kw: dict) -> None:
    base = dict(kind="mlp", n_users=3, n_items=3)
    with pytest.raises(ValueError):
        ModelConfig(**{**base, **kw})
    with pytest.raises(ValueError, match="at least one layer"):
        build_model(ModelConfig("mlp", 3, 3, layers=()))


def test_dropout_only_acts_in_training_mode() -> None:
    model = make("mlp", dropout=0.5)
    users, items = all_pairs()
    torch.testing.assert_close(model(users, items), model(users, items))
    model.train()
    assert not torch.equal(model(users, items), model(users, items))


@pytest.mark.parametrize("kind", KINDS)
def test_torch_scorer_speaks_numpy_and_agrees_with_itself(kind: str) -> None:
    scorer = TorchScorer(make(kind), chunk_rows=7)
    assert isinstance(scorer, Scorer)
    assert (scorer.n_users, scorer.n_items) == (N_USERS, N_ITEMS)
    users = np.array([5, 1, 5], dtype=np.int32)
    every = scorer.score_all(users)
    assert every.shape == (3, N_ITEMS) and every.dtype == np.float32
    items = np.tile(np.arange(N_ITEMS), (3, 1))[:, ::-1].copy()
    some = scorer.score(users, items)
    assert some.shape == items.shape and some.dtype == np.float32
    assert_scores_close(some, np.take_along_axis(every, items, axis=1))


def test_torch_scorer_rejects_out_of_range_indices_and_bad_shapes() -> None:
    scorer = TorchScorer(make("gmf"))
    with pytest.raises(ValueError, match="user"):
        scorer.score_all(np.array([N_USERS]))
    with pytest.raises(ValueError, match="item"):
        scorer.score(np.array([0]), np.array([[N_ITEMS]]))
    with pytest.raises(ValueError, match="shape"):
        scorer.score(np.array([0, 1]), np.array([1, 2]))


# ----------------------------------------------------------------------- the protocol, every model

EVERY_KIND = sorted(MODELS)  # the contract every registered model passes


def interactions(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    n = 60
    return Interactions(
        rng.integers(0, N_USERS, n).astype(np.int32),
        rng.integers(0, N_ITEMS, n).astype(np.int32),
        rng.integers(0, 1000, n).astype(np.int64),
        np.ones(n, np.float32),
        N_USERS,
        N_ITEMS,
    )


def example_batch(model: Model, b: int = 5) -> tuple[torch.Tensor, ...]:
    items = torch.randint(0, N_ITEMS, (b, 4))
    if model.user_input == "history":
        hist = torch.randint(0, N_ITEMS + 1, (b, model.history_len))  # N_ITEMS pads
        return hist, items
    if model.user_input == "sequence":  # windows oldest first, right-aligned, N_ITEMS pads
        windows = torch.randint(0, N_ITEMS, (b, 9))
        windows[torch.arange(9)[None, :] < torch.arange(b)[:, None]] = N_ITEMS
        return windows[:, :-1], windows[:, 1:]
    return torch.randint(0, N_USERS, (b,)), items[:, 0], torch.rand(b).round()


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_every_model_implements_the_protocol(kind: str) -> None:
    model = make(kind, dropout=0.0)
    assert isinstance(model, Model)
    assert model.user_input in ("id", "history", "sequence")
    assert (model.history_len > 0) == (model.user_input != "id")
    assert (model.n_users, model.n_items) == (N_USERS, N_ITEMS)


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_example_losses_are_one_differentiable_loss_per_example(kind: str) -> None:
    model = make(kind).train()
    losses = model.example_losses(*example_batch(model))
    assert losses.shape == (5,) and bool(torch.isfinite(losses).all()) and bool((losses >= 0).all())
    losses.mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_with_inputs_shares_the_parameters_and_leaves_the_model_alone(kind: str) -> None:
    model = make(kind)
    before = state(model)
    view = model.with_inputs(interactions())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert {id(p) for p in view.parameters()} == {id(p) for p in model.parameters()}
    users = torch.arange(N_USERS)
    assert_scores_close(view.score_all(users), view(users[:, None], torch.arange(N_ITEMS)))
    with pytest.raises(ValueError, match="index spaces"):
        model.with_inputs(dataclasses.replace(interactions(), n_items=N_ITEMS + 1))


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_score_new_user_scores_every_item_and_writes_nothing(kind: str) -> None:
    model = make(kind)
    before = state(model)
    fold = FoldInConfig(steps=5)
    scores = model.score_new_user(torch.tensor([3, 7, 1]), fold)
    assert scores.shape == (N_ITEMS,) and bool(torch.isfinite(scores).all())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    again = model.score_new_user(torch.tensor([3, 7, 1]), fold)
    torch.testing.assert_close(scores, again)  # seeded: the same person, the same answer


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_item_vectors_are_unit_rows_one_per_item(kind: str) -> None:
    v = make(kind).item_vectors()
    assert v.shape[0] == N_ITEMS and v.ndim == 2
    torch.testing.assert_close(v.norm(dim=1), torch.ones(N_ITEMS))


@pytest.mark.parametrize("kind", EVERY_KIND)
def test_explain_scores_every_input_for_every_item_and_writes_nothing(kind: str) -> None:
    model = make(kind).with_inputs(interactions())
    before = state(model)
    inputs = torch.tensor([[3, 7, N_ITEMS, 1, -1], [N_ITEMS] * 5, [5, 5, 2, 0, 9]])
    items = torch.tensor([[0, 3, 22], [1, 2, 3], [4, 5, 6]])
    share = model.explain(inputs, items)
    assert share.shape == (3, 3, 5) and share.dtype == torch.float32
    padding = (inputs < 0) | (inputs >= N_ITEMS)
    assert bool((share[padding[:, None, :].expand_as(share)] == -torch.inf).all())
    real = share[~padding[:, None, :].expand_as(share)]
    read = torch.isfinite(real)
    assert bool(read.any()) and not bool(torch.isnan(share).any())
    if model.user_input == "id" or model.history_len >= inputs.shape[1]:
        assert bool(read.all())  # every real input the model reads has a finite share
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    for b in range(3):  # batch-first: one row alone gives the same answer
        torch.testing.assert_close(model.explain(inputs[b : b + 1], items[b : b + 1])[0], share[b])
