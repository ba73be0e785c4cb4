"""Recommendations from a saved run on planted blocks: the right answer is the user's block."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from _close import assert_same_ranking
from _train_fixtures import ITEMS_PER_GROUP, fast_config, planted_dataset
from typer.testing import CliRunner

from movierec.artifacts import save_run
from movierec.cli import app
from movierec.recommend import Recommender, batch_blocks, write_parquet
from movierec.split import leave_last_out
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
