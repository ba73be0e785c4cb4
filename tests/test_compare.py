"""Our models join the leaderboard through the same contender rule as the peers."""

import json

from _train_fixtures import planted_split
from typer.testing import CliRunner

from movierec.cli import app
from movierec.compare import leaderboard, to_json, trained


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
