import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _close import assert_ranking_settled
from _eval_fixtures import (
    TableScorer,
    constant_scorer,
    oracle_scorer,
    planted_split,
    random_scorer,
    random_split,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec import fused
from movierec.evaluate import (
    Metrics,
    Scorer,
    evaluate,
    evaluate_full,
    evaluate_sampled,
    holdout,
)
from movierec.metrics import hit_rate, ndcg
from movierec.models import ModelConfig, TorchScorer, build_model
from movierec.sampling import seen_keys


@pytest.fixture(scope="module")
def split():
    return random_split(seed=3)


def _reference_full_ranks(table, users, targets, seen):
    """Per-user loop, test only: pessimistic rank and ties among unseen non-target items."""
    seen = sp.csr_matrix(seen)
    ranks, ties = [], []
    for u, t in zip(users, targets, strict=True):
        allowed = np.ones(table.shape[1], dtype=bool)
        allowed[seen[u].indices] = False
        allowed[t] = False
        others = table[u, allowed]
        ranks.append(int(np.sum(others >= table[u, t])))
        ties.append(int(np.sum(others == table[u, t])))
    return np.array(ranks), np.array(ties)


def test_scorers_satisfy_the_protocol(split):
    assert isinstance(constant_scorer(split.n_users, split.n_items), Scorer)


def test_constant_model_scores_exactly_one_tenth_sampled(split):
    m = evaluate(constant_scorer(split.n_users, split.n_items), split, seed=0)
    assert m.sampled["hr@10"] == pytest.approx(0.10, abs=1e-12)
    assert m.sampled["hr@5"] == pytest.approx(0.05, abs=1e-12)
    assert m.sampled["users"] == split.n_users
    # full ranking: uniform over every unseen item
    unseen = split.n_items - np.diff(split.seen_before_test().indptr)
    assert m.full["hr@10"] == pytest.approx(np.mean(10 / unseen))


def test_oracle_scores_one_on_both_protocols(split):
    for part in ("test", "validation"):
        m = evaluate(oracle_scorer(split, part), split, seed=1, on=part)
        for proto in (m.sampled, m.full):
            assert proto["hr@10"] == 1.0
            assert proto["ndcg@10"] == 1.0
            assert proto["hr@5"] == 1.0


def test_full_ranking_never_counts_seen_items(split):
    # every seen item outscores the target, which beats every unseen item
    seen = split.seen_before_test()
    table = np.zeros((split.n_users, split.n_items), dtype=np.float32)
    r, c = seen.nonzero()
    table[r, c] = 10.0
    table[split.test.users, split.test.items] = 5.0
    f = evaluate_full(TableScorer(table), split.test.users, split.test.items, seen)
    assert f["hr@5"] == 1.0 and f["ndcg@10"] == 1.0


def test_full_ranking_matches_a_per_user_reference(split):
    scorer = random_scorer(split.n_users, split.n_items, seed=5, levels=3)  # many ties
    users, targets, seen = split.test.users, split.test.items, split.seen_before_test()
    ranks, ties = _reference_full_ranks(scorer.table, users, targets, seen)
    f = evaluate_full(scorer, users, targets, seen)
    for k in (5, 10, 20):
        assert f[f"hr@{k}"] == pytest.approx(hit_rate(ranks, k, ties))
        assert f[f"ndcg@{k}"] == pytest.approx(ndcg(ranks, k, ties))


@pytest.mark.parametrize("batch", [1, 7, 16])
def test_full_in_chunks_equals_unchunked(split, batch):
    scorer = random_scorer(split.n_users, split.n_items, seed=2, levels=4)
    args = (scorer, split.test.users, split.test.items, split.seen_before_test())
    assert evaluate_full(*args, batch=batch) == evaluate_full(*args, batch=10_000)


def test_full_coverage_of_top10_lists():
    # everyone's unseen top-10 is items 0..9 except what they saw
    split = random_split(seed=1, n_users=10, n_items=200, per_user=5)
    table = np.tile(-np.arange(split.n_items, dtype=np.float32), (split.n_users, 1))
    seen = split.seen_before_test()
    f = evaluate_full(TableScorer(table), split.test.users, split.test.items, seen)
    expected = set()
    for u in split.test.users:
        unseen = np.setdiff1d(np.arange(split.n_items), seen[u].indices)
        expected |= set(unseen[:10].tolist())
    assert f["coverage@10"] == pytest.approx(len(expected) / split.n_items)


def test_validation_never_sees_test(split):
    # a scorer that puts each user's test item first and their validation item second
    table = np.zeros((split.n_users, split.n_items), dtype=np.float32)
    table[split.test.users, split.test.items] = 2.0
    table[split.validation.users, split.validation.items] = 1.0
    m = evaluate(TableScorer(table), split, on="validation")
    # full ranking on validation: the (future) test item competes and wins
    assert m.full["ndcg@10"] == pytest.approx(1 / np.log2(3))
    # sampled candidates never include the test item (it is seen somewhere)
    assert m.sampled["ndcg@10"] == 1.0


def test_holdout_candidates_are_shared_per_seed_and_unseen(split):
    a = holdout(split, part="test", seed=4)
    b = holdout(split, part="validation", seed=4)
    c = holdout(split, part="test", seed=5)
    np.testing.assert_array_equal(a.candidates, b.candidates)
    assert not np.array_equal(a.candidates, c.candidates)
    keys = seen_keys(split.seen_anywhere())
    q = a.users[:, None] * split.n_items + a.candidates
    assert not np.isin(q, keys).any()
    assert a.candidates.shape == (split.test.users.size, 99)
    with pytest.raises(ValueError, match="part"):
        holdout(split, part="train")


def test_metrics_json_shape(split):
    m = evaluate(constant_scorer(split.n_users, split.n_items), split)
    d = m.to_dict()
    assert set(d) == {"sampled", "full", "coverage@10"}
    assert {"hr@10", "ndcg@10", "hr@5", "ndcg@5", "hr@20", "ndcg@20", "users"} <= set(d["sampled"])
    assert set(d["full"]) == set(d["sampled"])
    lite = evaluate(constant_scorer(split.n_users, split.n_items), split, full=False)
    assert isinstance(lite, Metrics) and set(lite.to_dict()) == {"sampled"}


def test_torch_output_and_scorer_buffers_left_alone(split):
    table = random_scorer(split.n_users, split.n_items, seed=9).table
    before = table.copy()

    class TorchScorer(TableScorer):
        def score_all(self, users):
            return torch.from_numpy(self.table[np.asarray(users)])

    a = evaluate(TableScorer(table), split)
    b = evaluate(TorchScorer(table), split)
    assert a == b
    np.testing.assert_array_equal(table, before)


def test_sampled_rejects_a_target_among_its_candidates(split):
    h = holdout(split)
    bad = h.candidates.copy()
    bad[0, 0] = h.targets[0]
    with pytest.raises(ValueError, match="target"):
        evaluate_sampled(constant_scorer(split.n_users, split.n_items), h.users, h.targets, bad)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 50))
def test_sampled_invariant_to_candidate_order_and_batch(seed, batch):
    split, _ = planted_split(seed=seed % 7, users_per_group=8)
    scorer = random_scorer(split.n_users, split.n_items, seed=seed, levels=2)
    h = holdout(split, seed=seed)
    perm = np.random.default_rng(seed).permutation(h.candidates.shape[1])
    a = evaluate_sampled(scorer, h.users, h.targets, h.candidates)
    b = evaluate_sampled(scorer, h.users, h.targets, h.candidates[:, perm], batch=batch)
    assert a == b


class _ExactOnly:
    """A scorer's exact methods alone (no ``bounded_scorer``)."""

    def __init__(self, inner):
        self.inner, self.n_users, self.n_items = inner, inner.n_users, inner.n_items

    def score(self, users, items):
        return self.inner.score(users, items)

    def score_all(self, users):
        return self.inner.score_all(users)


def _float64_scores(model: torch.nn.Module, users: np.ndarray) -> np.ndarray:
    """Every item's score for ``users`` from a float64 copy of ``model``: the reference."""
    m = copy.deepcopy(model).double().eval()
    u = torch.as_tensor(users, dtype=torch.int64)
    with torch.no_grad():
        return m(u[:, None], torch.arange(m.n_items).expand(u.numel(), -1)).numpy()


@pytest.mark.skipif(not fused.available(), reason="no fused kernel here (or MOVIEREC_NO_C set)")
@pytest.mark.parametrize("kind", ["tutorial", "neumf"])
@pytest.mark.parametrize("q_h1", [fused.Q_H1, 2])  # 2: a coarse grid, most items rescored
def test_screened_full_ranking_equals_exact(split, kind, q_h1, monkeypatch):
    torch.manual_seed(0)
    config = ModelConfig(kind, split.n_users, split.n_items, factors=8, layers=(16, 8))
    model = build_model(config)
    for p in model.parameters():  # far from init, so that relu cuts matter
        torch.nn.init.normal_(p, 0.0, 0.5)
    monkeypatch.setattr(fused, "Q_H1", q_h1)
    scorer = TorchScorer(model)
    assert scorer.bounded_scorer() is not None
    args = (split.test.users, split.test.items, split.seen_before_test())
    # the exact path scores in the kernel, the screened one rescores pairs in torch: their
    # float32 roundings differ, so identical figures need a fixture no rounding can reorder
    users, targets = split.test.users, split.test.items
    seen = split.seen_before_test()[users].toarray() > 0
    assert_ranking_settled(_float64_scores(model, users), targets=targets, excluded=seen, k=10)
    assert evaluate_full(scorer, *args, batch=7) == evaluate_full(_ExactOnly(scorer), *args)


def test_screened_full_ranking_counts_exact_ties(split):
    # a model whose every score is the same: ties settle in the band, like the exact path
    config = ModelConfig("tutorial", split.n_users, split.n_items, factors=4, layers=(8, 4))
    model = build_model(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    scorer = TorchScorer(model)
    args = (split.test.users, split.test.items, split.seen_before_test())
    got, exact = evaluate_full(scorer, *args), evaluate_full(_ExactOnly(scorer), *args)
    del got["coverage@10"], exact["coverage@10"]  # which of the tied items: arbitrary
    assert got == exact
    unseen = split.n_items - np.diff(split.seen_before_test().indptr)
    assert got["hr@10"] == pytest.approx(np.mean(10 / unseen))
