"""Recommendations from a saved run on planted blocks: the right answer is the user's block."""

import json
import sqlite3

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from _close import assert_same_ranking
from _train_fixtures import ITEMS_PER_GROUP, fast_config, planted_dataset
from typer.testing import CliRunner

from movierec.artifacts import save_run
from movierec.batch import DEPTH, batch_blocks, depth_for, write_parquet
from movierec.cli import app
from movierec.errors import ParameterError
from movierec.explain import INPUTS
from movierec.filters import Filters
from movierec.recommend import History, Recommender
from movierec.split import leave_last_out
from movierec.store import Store
from movierec.train import fit

HISTORY_FAST = dict(factors=16, epochs=6, batch_size=128, lr=2e-2, negatives=16, device="cpu")


def block(items):
    return np.asarray(items) // ITEMS_PER_GROUP


@pytest.fixture(scope="module", params=["gmf", "history"])
def run_dir(request, tmp_path_factory):
    torch.set_num_threads(1)
    ds = planted_dataset()
    split = leave_last_out(ds.interactions)
    if request.param == "history":
        from movierec.train import TrainConfig

        config = TrainConfig.for_model("history", **HISTORY_FAST)
    else:
        config = fast_config(request.param)
    result = fit(split, config, progress=False)
    path = tmp_path_factory.mktemp(request.param) / "run"
    save_run(path, result, ds, split)
    return path


@pytest.fixture(scope="module")
def rec(run_dir):
    return Recommender.load(run_dir)


def test_batch_equals_one_by_one_and_never_repeats_seen(rec):
    # one user or all at once: different matrix shapes, so float32 rounding may differ
    users = np.arange(len(rec.users))
    together = rec.for_users(users, 10)
    for u in users[:20]:
        alone = rec.for_users(np.array([u]), 10)
        assert_same_ranking(alone.items, alone.scores, together.items[u], together.scores[u])
    seen = rec.seen.toarray() > 0
    assert not seen[users[:, None], together.items].any()


def test_known_users_get_their_own_block(rec):
    users = np.arange(len(rec.users))
    top = rec.for_users(users, 5).items
    own = block(rec.history(0)[0])[0]
    assert own == 0
    share = np.mean(block(top) == (users % 4)[:, None])
    assert share > 0.9


def test_cold_start_recommends_the_liked_block(rec):
    liked = np.array([2 * ITEMS_PER_GROUP + i for i in (0, 3, 7)])  # block 2
    top = rec.for_liked(liked, 10)
    assert not np.isin(top.items[0], liked).any()
    assert np.mean(block(top.items[0]) == 2) >= 0.9


def test_similar_movies_come_from_the_same_block(rec):
    item = 3 * ITEMS_PER_GROUP + 5
    top = rec.similar(item, 10)
    assert item not in top.items[0]
    assert np.mean(block(top.items[0]) == 3) >= 0.8


def test_batch_blocks_and_parquet(rec, tmp_path):
    path = tmp_path / "recs.parquet"
    blocks = list(write_parquet(path, batch_blocks(rec, 5, chunk=7)))
    assert sum(len(b[0]) for b in blocks) == len(rec.users)
    table = pq.read_table(path).to_pydict()
    assert len(table["user_id"]) == 5 * len(rec.users)
    users, movies, _, because = blocks[0]
    first = [table["because"][i] for i in range(5)]  # the first user's five rows
    assert first == [[int(m) for m in row if m >= 0] for row in because[0]]
    watched = set(rec.items.raw[rec.history(0)[0]].tolist())
    assert all(set(row) <= watched for row in first) and any(first)
    mine = sorted(
        (i for i, u in enumerate(table["user_id"]) if u == int(rec.users.raw[0])),
        key=lambda i: table["rank"][i],
    )
    assert [table["rank"][i] for i in mine] == [1, 2, 3, 4, 5]
    alone = rec.for_users(np.array([0]), 5)  # blocks of 7 users there: rounding may differ
    got = [table["movie_id"][i] for i in mine], [table["score"][i] for i in mine]
    assert_same_ranking(*got, rec.items.raw[alone.items[0]], alone.scores[0])


def test_cli_recommend_similar_batch(run_dir, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["recommend", str(run_dir), "--user", "1000", "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"recommendations"' in ok.output
    unknown = runner.invoke(app, ["recommend", str(run_dir), "--user", "5"])
    assert unknown.exit_code == 2 and "not in this run" in unknown.output
    liked = runner.invoke(app, ["recommend", str(run_dir), "--liked", "Movie 1", "--k", "3"])
    assert liked.exit_code == 0, liked.output
    missing = runner.invoke(app, ["recommend", str(run_dir), "--liked", "No Such Film"])
    assert missing.exit_code == 2 and "unknown title" in missing.output
    similar = runner.invoke(app, ["similar", str(run_dir), "--movie", "11", "--json"])
    assert similar.exit_code == 0, similar.output
    store = tmp_path / "recs.sqlite"
    done = runner.invoke(app, ["batch", str(run_dir), "--out", str(store), "--no-progress"])
    assert done.exit_code == 0, done.output
    assert store.exists()
    assert Store.open(store).k == min(DEPTH, 160 - 29)  # every unseen movie, up to 100


# --------------------------------------------------------------------------- because


def test_because_names_the_users_own_latest_movies(rec):
    users = np.arange(len(rec.users))
    plain = rec.for_users(users, 10)
    got = rec.for_users(users, 10, because=True)
    assert plain.because is None
    np.testing.assert_array_equal(got.items, plain.items)
    assert got.because.shape == (len(users), 10, 3) and got.because.dtype == np.int32
    latest = rec.timeline.latest(users, INPUTS)
    for u in users:
        for row in got.because[u]:
            real = row[row >= 0]
            assert set(real) <= set(latest[u]) and (row[len(real) :] == -1).all()
            assert len(set(real)) == len(real)
    named = got.because[got.because >= 0]
    assert named.size > 0.5 * got.because.size  # a model of blocks has reasons
    owner = np.broadcast_to(users[:, None, None], got.because.shape)[got.because >= 0]
    assert np.mean(block(named) == owner % 4) > 0.9  # from the user's own block


def test_because_of_a_liked_list_names_liked_movies(rec):
    liked = np.array([2 * ITEMS_PER_GROUP + i for i in (0, 3, 7)])
    got = rec.for_liked(liked, 10, because=True)
    named = got.because[got.because >= 0]
    assert named.size and set(named) <= set(liked)


def test_latest_inputs_are_the_history_latest_first():
    h = History.build(np.array([0, 0, 0, 2]), np.array([5, 6, 7, 1]), np.array([10, 30, 20, 5]), 3)
    np.testing.assert_array_equal(h.latest(np.array([0, 1, 2]), 2), [[6, 7], [-1, -1], [1, -1]])


# --------------------------------------------------------------------------- filters


def _allowed_ranking(rec, scores_row, allowed, seen, k):
    order = np.lexsort((np.arange(scores_row.size), -scores_row))
    return [i for i in order if allowed[i] and not seen[i]][:k]


def test_filters_keep_the_ranking_of_what_they_allow(rec):
    # every planted movie is a 2012 drama: exclude half of block 0 (users 0, 4, ...'s own)
    drama = Filters(genres=("Drama",), years=(2012, 2012), exclude=tuple(rec.items.raw[:20]))
    allowed = drama.allowed(rec.catalog, rec.items)
    assert not allowed[:20].any() and allowed.sum() == 140
    users = np.arange(len(rec.users))
    got = rec.for_users(users, 10, filters=drama, because=True)
    assert allowed[got.items[got.items >= 0]].all()
    scores = rec.run.model.score_all(users)
    seen = rec.seen.toarray() > 0
    for u in users[:10]:
        want = _allowed_ranking(rec, scores[u], allowed, seen[u], 10)
        assert_same_ranking(got.items[u], got.scores[u], want, scores[u][want])
    liked = rec.for_liked(np.array([3, 5]), 10, filters=drama)
    assert allowed[liked.items[0][liked.items[0] >= 0]].all()
    similar = rec.similar(3, 10, filters=drama)
    assert allowed[similar.items[0][similar.items[0] >= 0]].all()
    nothing = rec.for_users(users[:2], 5, filters=Filters(years=(1900, 1950)))
    assert (nothing.items == -1).all()  # every planted movie is from 2012
    inactive = rec.for_users(users, 10, filters=Filters())
    np.testing.assert_array_equal(inactive.items, rec.for_users(users, 10).items)


def test_depth_defaults_to_at_least_k_and_a_hundred():
    assert depth_for(10, None) == DEPTH == 100
    assert depth_for(100, None) == 100 and depth_for(5, 5) == 5
    with pytest.raises(ParameterError, match="--depth must lie in"):
        depth_for(10, 5)
    with pytest.raises(ParameterError, match="--depth"):
        depth_for(10, 1001)


def test_cli_filters_because_and_depth(run_dir, tmp_path, monkeypatch):
    runner = CliRunner()
    base = ["recommend", str(run_dir), "--user", "1000"]
    got = runner.invoke(app, [*base, "--genre", "drama", "--exclude", "Movie 11", "--json"])
    assert got.exit_code == 0, got.output
    recs = json.loads(got.output)["recommendations"]
    assert recs and all("Drama" in r["genres"] and r["movie_id"] != 11 for r in recs)
    reasons = [b for r in recs for b in r["because"]]
    assert reasons and all(set(b) == {"movie_id", "title"} for b in reasons)
    assert reasons[0]["title"].endswith("(2012)")
    liked = runner.invoke(app, ["recommend", str(run_dir), "--liked", "Movie 1", "--json"])
    assert all(
        b["movie_id"] == 1
        for r in json.loads(liked.output)["recommendations"]
        for b in r["because"]
    )
    for bad, message in [
        (["--genre", "Westerns"], "unknown genre 'Westerns'; known: Comedy, Drama"),
        (["--years", "2019-2000"], "reversed"),
        (["--years", "soon"], "expected YEAR"),
        (["--exclude", "No Such Film"], "unknown title"),
    ]:
        refused = runner.invoke(app, [*base, *bad])
        assert refused.exit_code == 2 and message in refused.output, refused.output
        assert refused.output.count("\n") == 1
    none = runner.invoke(app, [*base, "--years", "-1999", "--json"])
    assert none.exit_code == 0 and json.loads(none.output)["recommendations"] == []
    similar = runner.invoke(
        app, ["similar", str(run_dir), "--movie", "11", "--exclude-genre", "Drama", "--json"]
    )
    assert similar.exit_code == 0 and json.loads(similar.output)["similar"] == []
    monkeypatch.setenv("COLUMNS", "80")
    table = runner.invoke(app, [*base, "--k", "5"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert max(map(len, lines)) <= 80 and any("because you watched" in x for x in lines)
    assert sum("Movie " in x for x in lines) >= 15  # history and picks, reasons on each
    store = tmp_path / "deep.sqlite"
    args = ["batch", str(run_dir), "--out", str(store), "--k", "5", "--depth", "20"]
    done = runner.invoke(app, [*args, "--no-progress"])
    assert done.exit_code == 0 and "top 20" in done.output, done.output
    s = Store.open(store)
    assert s.k == 20 and s.meta["asked_k"] == 5
    rows = s.get(1000, 5)
    assert len(rows) == 5 and any(because for _, _, because in rows)
    alone = rec_for(run_dir).for_users(np.array([0]), 20, because=True)
    assert [m for m, _, _ in s.get(1000, 20)] == rec_for(run_dir).items.raw[alone.items[0]].tolist()
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM recs").fetchone()[0] == 20 * 100
    bad = runner.invoke(app, [*args[:-1], "3", "--no-progress"])
    assert bad.exit_code == 2 and "--depth must lie in [5, 1000]" in bad.output


def rec_for(run_dir):
    return Recommender.load(run_dir)
