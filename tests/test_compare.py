"""Our models join the leaderboard through the same contender rule as the peers."""

import json

import numpy as np
from _train_fixtures import planted_split
from typer.testing import CliRunner

from movierec.cli import app
from movierec.compare import PAIRED_KEYS, Row, leaderboard, paired_difference, to_json, trained


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
