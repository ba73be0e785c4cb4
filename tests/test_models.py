"""Model contracts: shapes, broadcasting, score_all == forward on every item, NeuMF init."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _close import assert_scores_close

from movierec.evaluate import Scorer
from movierec.models import GMF, MLP, MODELS, ModelConfig, NeuMF, TorchScorer, build_model

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
