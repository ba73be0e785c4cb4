import json

import numpy as np
import pytest
import scipy.sparse as sp
from _close import assert_scores_close
from _eval_fixtures import BLOCK, constant_scorer, interactions, planted_split, random_split

from movierec import baselines
from movierec.baselines import (
    EASE_MAX_ITEMS,
    PEERS,
    DotProduct,
    Popularity,
    fit_bpr,
    fit_ease,
    fit_ials,
    fit_peer,
    fit_popularity,
    grid,
    tune,
    tune_peer,
)
from movierec.compare import Fitted, leaderboard, peer, summarize, to_json
from movierec.evaluate import Scorer, evaluate
from movierec.split import leave_last_out

# small, quick settings that are ample for the planted fixture
QUICK = {
    "bpr": {"factors": 8, "learning_rate": 0.05, "iterations": 100, "regularization": 0.01},
    "ials": {"factors": 8, "regularization": 0.1, "alpha": 10.0, "iterations": 10},
    "ease": {"lam": 10.0},
}


@pytest.fixture(scope="module")
def planted():
    return planted_split(seed=0)


@pytest.mark.parametrize("name", ["bpr", "ials", "ease"])
def test_personalised_peers_find_the_planted_blocks(planted, name):
    split, group = planted
    model = fit_peer(name, split.train.to_csr(), QUICK[name], seed=0)
    assert isinstance(model, Scorer)
    m = evaluate(model, split, seed=0)
    assert m.sampled["hr@10"] >= 0.9
    assert m.full["hr@10"] >= 0.9
    # own block outscores every other block, on average, for every user
    s = model.score_all(np.arange(split.n_users)).reshape(split.n_users, -1, BLOCK).mean(axis=2)
    own = s[np.arange(split.n_users), group]
    s[np.arange(split.n_users), group] = -np.inf
    assert np.all(own > s.max(axis=1))


def test_score_matches_score_all(planted):
    split, _ = planted
    users = np.array([0, 5, 40])
    items = np.array([[0, 1, 30], [2, 39, 100], [21, 22, 3]])
    for name in ("popularity", "bpr", "ials", "ease"):
        model = fit_peer(name, split.train.to_csr(), QUICK.get(name, {}), seed=1)
        full = model.score_all(users)
        assert full.shape == (3, split.n_items) and full.dtype == np.float32
        assert_scores_close(model.score(users, items), np.take_along_axis(full, items, axis=1))


def test_popularity_ranks_by_training_counts():
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32))
    model = fit_popularity(x)
    assert isinstance(model, Popularity)
    np.testing.assert_array_equal(model.score_all(np.array([0]))[0], [3, 2, 1, 0])
    np.testing.assert_array_equal(model.score(np.array([2]), np.array([[3, 0]])), [[0, 3]])


def test_popularity_finds_the_popular_items():
    # 30 users: 3 tail items (10..149) early, then 6 of the 10 popular items (0..9)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 9)
    items = np.concatenate(
        [
            np.r_[rng.choice(np.arange(10, 150), 3, replace=False), rng.permutation(10)[:6]]
            for _ in range(30)
        ]
    )
    split = leave_last_out(interactions(users, items, 30, 150))
    m = evaluate(fit_popularity(split.train.to_csr()), split)
    assert m.sampled["hr@5"] == 1.0  # at most 4 unseen popular items compete with the target


@pytest.mark.parametrize("form", ["primal", "dual", "auto"])
def test_ease_matches_the_closed_form(form):
    rng = np.random.default_rng(2)
    dense = (rng.random((30, 12)) < 0.3).astype(np.float64)
    dense[:, 11] = 0  # an item nobody trained on
    x = sp.csr_matrix(dense)
    lam = 3.0
    p = np.linalg.inv(dense.T @ dense + lam * np.eye(12))
    b = np.eye(12) - p / np.diag(p)[None, :]
    model = fit_ease(x, lam=lam, form=form)
    if form == "primal":
        assert np.all(np.diag(model.weights) == 0)
    np.testing.assert_allclose(model.score_all(np.arange(30)), dense @ b, atol=1e-4)
    np.testing.assert_array_equal(model.score_all(np.arange(30))[:, 11], 0.0)


def test_ease_refuses_huge_catalogues_clearly():
    n = EASE_MAX_ITEMS + 1
    x = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n) % 7, np.arange(n))), shape=(7, n))
    with pytest.raises(ValueError, match=r"EASE needs a dense 30,001 x 30,001.*limited"):
        fit_ease(x, lam=100.0)
    with pytest.raises(ValueError, match="lam"):
        fit_ease(x[:, :10], lam=0.0)


def test_factor_models_are_dot_products(planted):
    split, _ = planted
    x = split.train.to_csr()
    bpr = fit_bpr(x, factors=4, iterations=5, seed=0, threads=1)
    als = fit_ials(x, factors=4, iterations=3, seed=0, threads=1)
    for model in (bpr, als):
        assert isinstance(model, DotProduct)
        assert model.n_users == split.n_users and model.n_items == split.n_items
    # seeded and single-threaded: reproducible
    again = fit_ials(x, factors=4, iterations=3, seed=0, threads=1)
    np.testing.assert_array_equal(als.item_factors, again.item_factors)


def test_grid_is_a_cartesian_product():
    g = grid(a=[1, 2], b=["x", "y", "z"])
    assert len(g) == 6 and g[0] == {"a": 1, "b": "x"} and g[-1] == {"a": 2, "b": "z"}
    assert len(PEERS["ials"].grid) == 36
    assert all(len(p.grid) <= 36 for p in PEERS.values()) and len(PEERS["ease"].grid) == 6


def test_tune_picks_the_best_validation_point(planted):
    split, _ = planted
    drowned = {**QUICK["ials"], "regularization": 1e5}  # shrinks every factor to ~0
    points = [drowned, QUICK["ials"]]
    params, table = tune("ials", split, grid=points, seed=0)
    assert params == {**PEERS["ials"].defaults, **QUICK["ials"]}
    assert [row["regularization"] for row in table] == [1e5, 0.1]
    assert table[1]["hr@10"] > table[0]["hr@10"]
    assert {"hr@10", "ndcg@10", "fit_seconds"} <= set(table[0])
    with pytest.raises(ValueError, match="unknown peer"):
        tune("svd", split)
    with pytest.raises(ValueError, match="empty"):
        tune("ease", split, grid=[])


def test_deterministic_peers_fit_once_across_seeds(planted, monkeypatch):
    split, _ = planted
    calls = []
    original = PEERS["ease"]
    counted = baselines.Peer(
        "ease",
        lambda train, **kw: calls.append(kw) or original.fit(train, **kw),
        original.defaults,
        original.grid,
        seeded=False,
    )
    monkeypatch.setitem(PEERS, "ease", counted)
    cache: baselines.FitCache = {}
    for seed in (0, 1, 2):
        tune_peer("ease", split, grid=[{"lam": 10.0}, {"lam": 50.0}], seed=seed, cache=cache)
    assert len(calls) == 2


def test_leaderboard_with_an_extra_contender(planted):
    split, _ = planted

    def constant(s, seed):
        scorer = constant_scorer(s.n_users, s.n_items)
        return Fitted(scorer, lambda inputs: scorer, {"value": 0.5}, 0.0)

    small = {"ease": [QUICK["ease"]], "ials": [QUICK["ials"]]}
    rows = leaderboard(
        split,
        models=(),
        seeds=(0, 1),
        extra={
            "popularity": peer("popularity"),
            "ease": peer("ease", small["ease"]),
            "constant": constant,
        },
    )
    assert [(r.model, r.seed) for r in rows] == [
        (m, s) for m in ("popularity", "ease", "constant") for s in (0, 1)
    ]
    by = {(r.model, r.seed): r for r in rows}
    assert by[("ease", 0)].test.sampled["hr@10"] >= 0.9
    assert by[("constant", 1)].test.sampled["hr@10"] == pytest.approx(0.1)
    assert by[("ease", 0)].params == {"lam": 10.0}
    summary = summarize(rows)
    mean, std = summary["constant"]["test.sampled.hr@10"]
    assert mean == pytest.approx(0.1) and std == pytest.approx(0.0, abs=1e-12)
    assert summary["ease"]["seeds"] == 2
    one = to_json([r for r in rows if r.seed == 0])
    text = json.dumps(one)
    assert set(json.loads(text)) == {"popularity", "ease", "constant"}
    assert {"sampled", "full", "train_seconds", "params"} <= set(one["ease"])
    with pytest.raises(ValueError, match="several seeds"):
        to_json(rows)
    with pytest.raises(ValueError, match="twice"):
        leaderboard(split, models=("popularity",), extra={"popularity": constant})


def test_random_data_gives_no_free_lunch():
    split = random_split(seed=0, n_users=60, n_items=400)
    m = evaluate(fit_peer("ease", split.train.to_csr(), {"lam": 10.0}), split)
    assert m.sampled["hr@10"] < 0.35


# --- the peers at test: users' inputs from train + validation, what was learned kept ---


def test_popularity_with_inputs_counts_them():
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32))
    more = x.copy().tolil()
    more[0, 3] = more[1, 3] = 1
    model = fit_popularity(x).with_inputs(sp.csr_matrix(more))
    np.testing.assert_array_equal(model.score_all(np.array([0]))[0], [3, 2, 1, 2])
    with pytest.raises(ValueError, match="inputs are"):
        fit_popularity(x).with_inputs(x[:2])


@pytest.mark.parametrize("form", ["primal", "dual"])
def test_ease_with_inputs_multiplies_new_rows_by_the_train_weights(form):
    rng = np.random.default_rng(3)
    dense = (rng.random((30, 12)) < 0.3).astype(np.float64)
    lam = 3.0
    p = np.linalg.inv(dense.T @ dense + lam * np.eye(12))
    b = np.eye(12) - p / np.diag(p)[None, :]
    rows = np.maximum(dense, rng.random((30, 12)) < 0.1)  # one more movie or two per user
    model = fit_ease(sp.csr_matrix(dense), lam=lam, form=form)
    folded = model.with_inputs(sp.csr_matrix(rows, dtype=np.float32))
    np.testing.assert_allclose(folded.score_all(np.arange(30)), rows @ b, atol=1e-4)
    np.testing.assert_allclose(model.score_all(np.arange(30)), dense @ b, atol=1e-4)


def test_ials_with_inputs_is_the_exact_user_step(planted):
    split, _ = planted
    model = fit_ials(split.train.to_csr(), factors=8, regularization=0.1, alpha=10.0, seed=0)
    rows = split.seen_before_test().tolil()
    rows[3] = 0  # a user with no movie
    rows = rows.tocsr()
    folded = model.with_inputs(rows)
    y = model.item_factors.astype(np.float64)
    for u in (0, 7, 50):
        yu = y[rows[u].indices]
        a = y.T @ y + 9.0 * yu.T @ yu + 0.1 * np.eye(8)
        want = np.linalg.solve(a, 10.0 * yu.sum(axis=0))
        np.testing.assert_allclose(folded.user_factors[u], want, rtol=1e-3, atol=1e-5)
    assert not folded.user_factors[3].any()
    np.testing.assert_array_equal(folded.item_factors, model.item_factors)
    assert not np.allclose(folded.user_factors[0], model.user_factors[0])


def test_bpr_is_fit_again_on_new_inputs_with_the_chosen_settings(planted, monkeypatch):
    split, _ = planted
    calls = []
    original = PEERS["bpr"]
    counted = baselines.Peer(
        "bpr",
        lambda train, **kw: calls.append((train.nnz, kw)) or original.fit(train, **kw),
        original.defaults,
        original.grid,
        refit=True,
    )
    monkeypatch.setitem(PEERS, "bpr", counted)
    small = {**QUICK["bpr"], "iterations": 5}
    tuned = tune_peer("bpr", split, grid=[small], seed=3)
    rows = split.seen_before_test()
    model = tuned.with_inputs(rows)
    assert calls[-1] == (rows.nnz, {"seed": 3, **tuned.params})
    assert model.n_users == split.n_users and model is not tuned.scorer
