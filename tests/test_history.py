"""The history model: histories, causal training rows, scoring, cold start, persistence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import safetensors.torch
import torch
from _close import assert_scores_close

from movierec.data import Interactions
from movierec.evaluate import evaluate
from movierec.models import ModelConfig, TorchScorer, build_model, scorer_for
from movierec.models import inputs_for as history_for
from movierec.models.history import (
    HISTORY_LEN,
    HistoryModel,
    Sequences,
    build_histories,
    chronological_order,
)
from movierec.split import leave_last_out
from movierec.training.config import PRESETS, TrainConfig
from movierec.training.epochs import CausalRows
from movierec.training.fit import fit

BLOCKS, USERS_PER_BLOCK, ITEMS_PER_BLOCK, PER_USER = 5, 16, 30, 15  # 135 unseen >= 99


def planted(seed: int = 0) -> Interactions:
    """Each user consumes PER_USER items of one block (user % BLOCKS), one after another."""
    rng = np.random.default_rng(seed)
    n_users, n_items = BLOCKS * USERS_PER_BLOCK, BLOCKS * ITEMS_PER_BLOCK
    users = np.repeat(np.arange(n_users), PER_USER)
    offs = np.concatenate(
        [rng.choice(ITEMS_PER_BLOCK, PER_USER, replace=False) for _ in range(n_users)]
    )
    items = (users % BLOCKS) * ITEMS_PER_BLOCK + offs
    ts = 1_600_000_000 + np.tile(np.arange(PER_USER) * 100, n_users) + users
    return Interactions(
        users.astype(np.int32),
        items.astype(np.int32),
        ts.astype(np.int64),
        np.ones(users.size, np.float32),
        n_users,
        n_items,
    )


def config(**kw):
    fast = dict(factors=16, epochs=6, batch_size=128, lr=2e-2, negatives=16, device="cpu")
    return TrainConfig(model="history", **{**PRESETS["history"], **fast, **kw})


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    split = leave_last_out(planted())
    return split, fit(split, config(), progress=False)


def inter(users, items, ts, n_users, n_items) -> Interactions:
    users = np.asarray(users, np.int32)
    return Interactions(
        users,
        np.asarray(items, np.int32),
        np.asarray(ts, np.int64),
        np.ones(users.size, np.float32),
        n_users,
        n_items,
    )


def test_build_histories_latest_first_with_padding():
    # user 0: items 5 (t=3), 2 (t=1), 7 (t=2), 1 (t=3: tie, the lower item 1 is the latest)
    x = inter([0, 0, 2, 0, 0], [5, 2, 4, 7, 1], [3, 1, 9, 2, 3], n_users=3, n_items=9)
    h = build_histories(x, L=3)
    assert h.dtype == torch.int64
    assert h.tolist() == [[1, 5, 7], [9, 9, 9], [4, 9, 9]]
    assert build_histories(x, L=6)[0].tolist() == [1, 5, 7, 2, 9, 9]


def test_causal_rows_hold_only_earlier_items():
    rng = np.random.default_rng(3)
    n = 400
    x = inter(rng.integers(0, 12, n), rng.integers(0, 50, n), rng.integers(0, 30, n), 12, 50)
    x = x.subset(np.unique(x.users.astype(np.int64) * 50 + x.items, return_index=True)[1])
    rows = CausalRows.from_split(leave_last_out(x), torch.device("cpu"), history_len=5)
    seq, n_rows = rows.seq, len(rows)
    positions = torch.as_tensor(rng.permutation(n_rows))
    hist, items = rows.batch((positions, torch.zeros((n_rows, 3), dtype=torch.int64)))
    assert hist.shape == (n_rows, 5) and items.shape == (n_rows, 3)
    for p, h in zip(positions.tolist(), hist.tolist()):
        start = seq.starts[seq.users[p]]  # brute force: the same user's items strictly before p
        want = seq.items[max(start, p - 5) : p][::-1].tolist()
        assert h == want + [50] * (5 - len(want))
    # chronological order: every earlier position has an earlier (timestamp, -item)
    o = chronological_order(x)
    key = x.users[o].astype(np.int64) * 10**6 + x.timestamps[o] * 100 - x.items[o]
    assert np.all(np.diff(key) >= 0)


def test_causal_epochs_are_seeded_and_shard_into_the_one_process_epoch():
    rows = CausalRows.from_split(leave_last_out(planted()), torch.device("cpu"), history_len=4)
    pos, items = rows.epoch(seed=1, epoch=2, negatives=8)
    again = rows.epoch(seed=1, epoch=2, negatives=8)
    assert torch.equal(pos, again[0]) and torch.equal(items, again[1])
    assert items.shape == (len(rows), 9)
    assert torch.equal(items[:, 0], torch.as_tensor(rows.seq.items)[pos])  # the positive first
    seen = leave_last_out(planted()).seen_anywhere().toarray()
    users = torch.as_tensor(rows.seq.users)[pos]
    assert not seen[users[:, None].numpy(), items[:, 1:].numpy()].any()  # unseen negatives
    index = np.arange(3, len(rows), 7)
    part = rows.epoch(seed=1, epoch=2, negatives=8, index=index)
    assert torch.equal(part[0], pos[index]) and torch.equal(part[1], items[index])


def test_sequences_end_with_the_splits_validation_then_test_item():
    rng = np.random.default_rng(5)
    n = 600  # timestamps in 0..9 for 50 items: many ties
    x = inter(rng.integers(0, 15, n), rng.integers(0, 50, n), rng.integers(0, 10, n), 15, 50)
    x = x.subset(np.unique(x.users.astype(np.int64) * 50 + x.items, return_index=True)[1])
    split = leave_last_out(x)
    seq = Sequences.from_interactions(split.all())
    ends = seq.starts[1:][split.test.users]
    assert seq.items[ends - 1].tolist() == split.test.items.tolist()
    assert seq.items[ends - 2].tolist() == split.validation.items.tolist()


def test_forward_broadcasts_like_score_all():
    torch.manual_seed(0)
    m = HistoryModel(n_users=7, n_items=11, factors=4, L=3)
    m = m.with_inputs(inter([0, 0, 1, 3, 3, 3, 3], [1, 2, 3, 4, 5, 6, 7], range(7), 7, 11))
    with torch.no_grad():
        m.item_bias.normal_()
    users = torch.arange(7)
    full = m.score_all(users)
    assert full.shape == (7, 11)
    items = torch.randint(0, 11, (7, 5))
    with torch.no_grad():  # pairs against every item: other shapes, other rounding
        assert_scores_close(m(users[:, None], items), full.gather(1, items))
        assert_scores_close(m(users, items[:, 0]), full.gather(1, items[:, :1])[:, 0])
    # a user without history scores the item bias
    torch.testing.assert_close(full[2], m.item_bias.detach())


def test_position_weights_normalise_over_present_items():
    m = HistoryModel(n_users=1, n_items=4, factors=3, L=4)
    with torch.no_grad():
        m.item_in.weight[:4] = torch.eye(4, 3) + 1.0
    one = m.user_vectors_from_items(torch.tensor([[2, 4, 4, 4]]))
    torch.testing.assert_close(one, m.item_in.weight[2:3])
    # a liked list longer than L keeps the first L entries
    long = m.user_vectors_from_items(torch.tensor([[0, 1, 2, 3, 0, 0]]))
    torch.testing.assert_close(long, m.user_vectors_from_items(torch.tensor([[0, 1, 2, 3]])))


def test_learns_planted_blocks(trained):
    split, result = trained
    assert result.config.model == "history" and result.best_epoch >= 1
    m = evaluate(TorchScorer(result.model), split, seed=0, on="test")
    assert m.sampled["hr@10"] >= 0.9
    assert m.full["hr@10"] > 0.3  # random would be ~10 / 135


def test_fit_leaves_test_histories(trained):
    split, result = trained
    want = build_histories(history_for(split, "test"), HISTORY_LEN)
    assert torch.equal(result.model.history.cpu(), want)
    # the validation item is the most recent history entry when scoring test
    v = split.validation
    assert torch.equal(
        result.model.history[v.users.astype(np.int64), 0].cpu(),
        torch.as_tensor(v.items.astype(np.int64)),
    )


def test_cold_start_ranks_the_liked_block_first(trained):
    _, result = trained
    m = result.model
    for b in range(BLOCKS):
        liked = torch.tensor([[b * ITEMS_PER_BLOCK + k for k in (0, 3, 7)]])
        scores = m.score_items_for_history(liked)[0]
        top = torch.topk(scores, 10).indices // ITEMS_PER_BLOCK
        assert (top == b).all()


def test_seeded_runs_are_identical():
    split = leave_last_out(planted(1))
    a = fit(split, config(epochs=2), progress=False)
    b = fit(split, config(epochs=2), progress=False)
    for (k, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), k


def test_state_dict_round_trips_through_build_model(tmp_path, trained):
    _, result = trained
    state = {k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()}
    assert "history" in state
    safetensors.torch.save_file(state, tmp_path / "w.safetensors")
    cfg = ModelConfig(**{**dataclasses.asdict(result.model_config), "init_std": 0.01})
    fresh = build_model(cfg)
    fresh.load_state_dict(safetensors.torch.load_file(tmp_path / "w.safetensors"), strict=True)
    users = torch.arange(fresh.n_users)
    torch.testing.assert_close(fresh.score_all(users), result.model.score_all(users))


def test_save_run_and_load_run(tmp_path, trained):
    artifacts = pytest.importorskip("movierec.artifacts")
    from movierec.data import Catalog, Dataset, IdMap

    split, result = trained
    n_items = split.n_items
    movie_ids = np.arange(n_items, dtype=np.int64) + 1
    catalog = Catalog(
        movie_ids,
        np.array([f"M{i}" for i in movie_ids], dtype=object),
        np.zeros(n_items, np.int16),
        np.array([""] * n_items, dtype=object),
    )
    ds = Dataset(split.all(), IdMap(np.arange(split.n_users) + 1), IdMap(movie_ids), catalog)
    artifacts.save_run(tmp_path / "run", result, ds, split)
    run = artifacts.load_run(tmp_path / "run")
    assert isinstance(run.model.model, HistoryModel)
    users = np.arange(split.n_users)
    np.testing.assert_allclose(run.model.score_all(users), result.scorer().score_all(users))


def test_with_inputs_leaves_the_model_alone(trained):
    split, result = trained
    m = result.model
    before = m.history.clone()
    val = m.with_inputs(history_for(split, "validation"))
    assert torch.equal(m.history, before)
    assert torch.equal(val.history.cpu(), build_histories(split.train, HISTORY_LEN))
    assert val.item_out.weight is m.item_out.weight
    # validation scoring through scorer_for never sees the validation item in the history
    s = scorer_for(m, split, "validation")
    users = split.validation.users.astype(np.int64)
    assert not (s.model.history[users] == torch.as_tensor(split.validation.items[:, None])).any()
    assert evaluate(s, split, seed=0, on="validation", full=False).sampled["hr@10"] >= 0.8
    assert torch.equal(m.history, before)


def test_item_vectors_are_unit_length(trained):
    _, result = trained
    v = result.model.item_vectors()
    assert v.shape == (result.model.n_items, 2 * result.model.d)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(v.shape[0]))
