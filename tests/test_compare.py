"""Our models join the leaderboard through the same contender rule as the peers."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from _eval_fixtures import TableScorer, constant_scorer, interactions
from _train_fixtures import fast_config, planted_split
from typer.testing import CliRunner

from movierec.cli import app
from movierec.compare import (
    Fitted,
    Row,
    from_training,
    leaderboard,
    peer,
    to_json,
    trained,
)
from movierec.evaluate import evaluate
from movierec.models import inputs_for
from movierec.split import Split, leave_last_out
from movierec.standing import PAIRED_KEYS, paired_difference, validation_choice
from movierec.training.fit import fit

PAIRS, FILLER, N_ITEMS = 20, 40, 200  # movies 2k and 2k + 1 go together; 40.. are filler
PROBES = np.arange(60, 80)  # users whose validation movie alone predicts their test movie


def pair_split(seed: int = 0) -> Split:
    """Users 0-59 watch three pairs (2k, 2k + 1) in train, then filler for validation and
    test. Probe user 60 + k watches six filler movies, then 2k (validation), then 2k + 1
    (test): only the validation movie says what comes next."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(60):
        pairs = rng.choice(PAIRS, 3, replace=False)
        watched = [
            *np.c_[2 * pairs, 2 * pairs + 1].ravel(),
            *rng.choice(np.arange(FILLER, N_ITEMS), 4, replace=False),
        ]
        users += [u] * len(watched)
        items += watched
    for k, u in enumerate(PROBES):
        watched = [*rng.choice(np.arange(FILLER, N_ITEMS), 6, replace=False), 2 * k, 2 * k + 1]
        users += [u] * len(watched)
        items += watched
    return leave_last_out(interactions(np.array(users), np.array(items), 80, N_ITEMS))


def test_our_models_join_the_leaderboard_and_learn_the_blocks():
    split = planted_split()
    rows = leaderboard(
        split, ("popularity",), extra={m: trained(m) for m in ("tutorial", "history")}
    )
    board = to_json(rows)
    assert set(board) == {"popularity", "tutorial", "history"}
    assert board["history"]["sampled"]["hr@10"] > 0.9
    assert board["history"]["sampled"]["hr@10"] > board["popularity"]["sampled"]["hr@10"]
    assert board["tutorial"]["params"]["epochs"] >= 1


def test_compare_refuses_unknown_models():
    result = CliRunner().invoke(app, ["compare", "--models", "popularity,nosuch", "--json"])
    assert result.exit_code == 2
    assert "nosuch" in result.output


def test_compare_json_on_the_embedded_set_with_a_cheap_peer():
    result = CliRunner().invoke(app, ["compare", "--models", "popularity", "--json"])
    assert result.exit_code == 0, result.output
    board = json.loads(result.stdout[result.stdout.index("{") :])
    assert set(board["popularity"]) >= {"sampled", "full", "train_seconds"}


def _scored_row(model: str, seed: int, hits: np.ndarray) -> Row:
    from movierec.evaluate import Metrics

    figure = {"hr@10": float(hits.mean()), "ndcg@10": float(hits.mean()) / 2, "users": hits.size}
    per_user = {k: hits.astype(float) for k in PAIRED_KEYS}
    test = Metrics(figure, figure, 0.1, per_user)
    return Row(model, seed, {}, 1.0, 1.0, test, test)


def test_first_only_when_the_paired_interval_excludes_zero() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(500) < 0.4
    rows = [_scored_row("popularity", s, rng.random(500) < 0.2) for s in (0, 1)] + [
        _scored_row("ease", s, base) for s in (0, 1)
    ]
    ours = [_scored_row("history", s, base | (rng.random(500) < 0.25)) for s in (0, 1)]
    d = paired_difference([*rows, *ours], "history", "full.ndcg@10")
    assert d.other == "ease" and d.low > 0
    assert d.verdict().startswith("history first on full.ndcg@10: +")
    assert " vs ease (95%: +" in d.verdict() and len(d.verdict()) <= 80
    level = [_scored_row("history", s, rng.random(500) < 0.4) for s in (0, 1)]
    d = paired_difference([*rows, *level], "history", "sampled.hr@10")
    assert d.low < 0 < d.high and d.verdict().startswith("history tied with ease")


def test_the_default_is_whichever_candidate_wins_on_validation() -> None:
    def row(model: str, seed: int, hit_rate: float) -> Row:
        return _scored_row(model, seed, np.arange(100) < hit_rate * 100)

    rows = [row("history", 0, 0.8), row("history", 1, 0.7), row("sasrec", 0, 0.76)]
    rows += [row("sasrec", 1, 0.76), row("ease", 0, 0.99)]  # a peer is no candidate
    choice = validation_choice(rows, ("history", "sasrec"), default="history")
    assert choice.figures == pytest.approx({"sasrec": 0.76, "history": 0.75})
    assert choice.winner == "sasrec" and "sasrec beats the default, history" in choice.line()
    kept = validation_choice([rows[0], rows[2]], ("history", "sasrec"), "history")  # 0.8 vs 0.76
    assert kept.winner == "history" and kept.line().endswith("the default, history, wins")
    assert validation_choice(rows[:2], ("history", "sasrec"), "history") is None


def test_cli_compare_over_seeds_says_where_the_default_stands(tmp_path) -> None:
    from test_train import planted_release

    data = planted_release(tmp_path / "data")
    args = ["compare", "--data", str(data), "--models", "popularity,history", "--seeds", "2"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["history"]["seeds"] == 2 and len(out["history"]["test.sampled.hr@10"]) == 2
    assert [p["key"] for p in out["paired"]] == list(PAIRED_KEYS)
    assert all(p["other"] == "popularity" and p["low"] <= p["high"] for p in out["paired"])
    table = CliRunner().invoke(app, args, terminal_width=120)
    assert table.exit_code == 0, table.output
    assert "±" in table.stdout and "(95%: " in table.stdout


# --- one input rule at test: train + validation for every contender ---


def test_test_inputs_are_train_plus_validation_and_validation_scores_train():
    split = pair_split()
    given = []
    oracle = np.zeros((split.n_users, split.n_items), dtype=np.float32)
    oracle[split.test.users, split.test.items] = 1.0

    def spy(s, seed):
        def with_inputs(inputs):
            given.append(inputs)
            return TableScorer(oracle)

        return Fitted(constant_scorer(s.n_users, s.n_items), with_inputs, {}, 0.0)

    (row,) = leaderboard(split, (), extra={"spy": spy})
    assert len(given) == 1
    want = sp.csr_matrix(split.seen_before_test())
    assert (given[0].to_csr() != want).nnz == 0  # train + validation, nothing of test
    assert row.test.sampled["hr@10"] == 1.0  # test: what with_inputs returned
    assert row.validation.sampled["hr@10"] == pytest.approx(0.1)  # validation: the scorer


QUICK = {
    "ease": [{"lam": 10.0}],
    "ials": [{"factors": 32, "regularization": 0.1, "alpha": 10.0, "iterations": 15}],
    "bpr": [{"factors": 32, "learning_rate": 0.05, "regularization": 0.01, "iterations": 200}],
}


@pytest.mark.parametrize("name", ["ease", "ials", "bpr"])
def test_the_validation_movie_reaches_every_peer_at_test(name):
    """The probes' test movie is predicted by their validation movie alone: with the rule
    the peers find it, without (inputs from train only) they cannot."""
    split = pair_split()
    fitted = peer(name, QUICK[name])(split, 0)
    at_test = fitted.with_inputs(inputs_for(split, "test"))
    rank = {}
    for tag, scorer in (("without", fitted.scorer), ("with", at_test)):
        scores = scorer.score_all(PROBES)
        scores[split.seen_before_test()[PROBES].toarray() > 0] = -np.inf
        target = scores[np.arange(PROBES.size), 2 * np.arange(PROBES.size) + 1]
        rank[tag] = (scores > target[:, None]).sum(axis=1)
    assert np.mean(rank["with"] < 10) >= 0.9 > 0.3 >= np.mean(rank["without"] < 10)
    with_rule = evaluate(at_test, split, on="test").full["hr@10"]
    assert with_rule > evaluate(fitted.scorer, split, on="test").full["hr@10"] + 0.15


def test_popularity_counts_validation_at_test():
    # users 0-19: validation movie 0; users 20-29: test movie 0, which no one has in train
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(30):
        watched = [*rng.choice(np.arange(1, 150), 6, replace=False)]
        watched.insert(-1 if u < 20 else len(watched), 0)
        users += [u] * len(watched)
        items += watched
    split = leave_last_out(interactions(np.array(users), np.array(items), 30, 150))
    fitted = peer("popularity")(split, 0)
    at_test = fitted.with_inputs(inputs_for(split, "test"))
    counts = np.bincount(split.seen_before_test().indices, minlength=150)
    np.testing.assert_array_equal(at_test.score_all(np.array([0]))[0], counts)
    assert fitted.scorer.score_all(np.array([0]))[0, 0] == 0 and counts[0] == 20
    hit = [evaluate(s, split, on="test").full["hr@10"] for s in (fitted.scorer, at_test)]
    assert hit[1] >= hit[0] + 0.25  # the ten users whose test movie is 0 now hit


@pytest.mark.parametrize("model", ["gmf", "history"])
def test_our_models_read_the_validation_movie_at_test(model):
    """history reads it as the latest movie, so the probes' test movie (its partner) rises;
    GMF's users are learned ids, so it is trained again with it (same settings, seed and
    epoch count), and the validation movie itself rises for the probes."""
    split = pair_split()
    if model == "history":
        fitted = trained(model)(split, 0)
    else:
        fitted = from_training(fit(split, fast_config(model), progress=False), split)
        assert fitted.params["epochs"] >= 1
    at_test = fitted.with_inputs(inputs_for(split, "test"))
    k = np.arange(PROBES.size)
    movie = 2 * k if model == "gmf" else 2 * k + 1  # the validation movie / its partner

    def rank(scorer):
        scores = scorer.score_all(PROBES)
        return (scores > scores[k, movie][:, None]).sum(axis=1)

    before, after = rank(fitted.scorer), rank(at_test)
    assert np.mean(after < 10) >= np.mean(before < 10) + 0.2
    assert np.median(after) < np.median(before)
    assert np.array_equal(rank(fitted.scorer), before)  # nothing written back
