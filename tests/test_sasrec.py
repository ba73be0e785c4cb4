"""SASRec (``movierec.models.sasrec``): causality, padding invariance, its sequence examples,
learning a planted next-item rule through the one loop, cold start, checkpoint and resume.
The protocol contract itself runs in ``test_models.py`` (every registered model)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from movierec.data import Interactions
from movierec.evaluate import evaluate
from movierec.foldin import FoldInConfig
from movierec.models import ModelConfig, SASRec, build_model
from movierec.split import Split, leave_last_out
from movierec.train import TrainConfig, fit
from movierec.training.epochs import SequenceRows, examples_for

N_USERS, N_ITEMS = 60, 150
SEQ_LEN = 20  # items per user in the planted data


def make(seed: int = 0, **kw) -> SASRec:
    torch.manual_seed(seed)
    config = ModelConfig("sasrec", N_USERS, N_ITEMS, **{"factors": 16, "init_std": None, **kw})
    return build_model(config).eval()


def cycle_split(seed: int = 0) -> Split:
    """Each user watches s, s+1, s+2, ... (mod N_ITEMS) from a random start s: the next
    movie is always the latest one plus one, which only an order-aware model can tell."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, N_ITEMS, N_USERS)
    users = np.repeat(np.arange(N_USERS, dtype=np.int32), SEQ_LEN)
    items = ((starts[:, None] + np.arange(SEQ_LEN)[None, :]) % N_ITEMS).astype(np.int32).ravel()
    timestamps = 1_500_000_000 + np.tile(np.arange(SEQ_LEN, dtype=np.int64) * 60, N_USERS)
    inter = Interactions(
        users, items, timestamps, np.full(users.size, 4.0, np.float32), N_USERS, N_ITEMS
    )
    return leave_last_out(inter)


def cycle_config(**kw) -> TrainConfig:
    base = dict(factors=32, dropout=0.0, epochs=40, batch_size=16, lr=5e-3, device="cpu")
    return TrainConfig.for_model("sasrec", **{**base, **kw})


# ----------------------------------------------------------------------- the encoder


def test_a_later_item_never_changes_an_earlier_output() -> None:
    model = make()
    seq = torch.randint(0, N_ITEMS, (3, 12))
    seq[:, :4] = N_ITEMS  # leading padding
    changed = seq.clone()
    changed[:, 8:] = torch.randint(0, N_ITEMS, (3, 4))
    with torch.no_grad():
        a, _ = model.encode(seq)
        b, _ = model.encode(changed)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_padding_never_changes_an_output() -> None:
    model = make()
    items = torch.tensor([[4, 9, 2, 30]])
    pads = [torch.full((1, n), N_ITEMS) for n in (0, 3, 30)]
    with torch.no_grad():
        vecs = [model.user_vectors_from_sequences(torch.cat([p, items], 1)) for p in pads]
        other_pad = model.user_vectors_from_sequences(torch.tensor([[-1, 4, 9, 2, 30]]))
        outs = [model.encode(torch.cat([p, items], 1))[0][:, -4:] for p in pads]
    for v in [*vecs[1:], other_pad]:
        torch.testing.assert_close(v, vecs[0])
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0])
    # a window of padding has the zero vector
    empty = model.user_vectors_from_sequences(torch.full((2, 5), N_ITEMS))
    assert torch.equal(empty, torch.zeros_like(empty))


def test_the_loss_of_a_sequence_ignores_its_padding() -> None:
    model = make()
    w = torch.tensor([[3, 8, 1, 20, 7]])
    padded = torch.cat([torch.full((1, 6), N_ITEMS), w], dim=1)
    short = model.example_losses(w[:, :-1], w[:, 1:])
    long = model.example_losses(padded[:, :-1], padded[:, 1:])
    torch.testing.assert_close(short, long)


def test_the_loss_option_and_its_automatic_choice() -> None:
    assert make().loss == "full"
    big = ModelConfig("sasrec", 3, 40_000, factors=8)
    assert SASRec.from_config(big).loss == "sampled"
    model = make(loss="sampled", negatives=1000)
    w = torch.randint(0, N_ITEMS, (4, 7))
    losses = model.train().example_losses(w[:, :-1], w[:, 1:])
    assert losses.shape == (4,) and bool((losses > 0).all())
    with pytest.raises(ValueError, match="loss"):
        ModelConfig("sasrec", 3, 4, loss="bce")


# ----------------------------------------------------------------------- examples


def test_sequence_examples_are_each_users_last_items_shifted_by_one() -> None:
    split = cycle_split()
    rows = examples_for(make(), split, torch.device("cpu"))
    assert isinstance(rows, SequenceRows) and len(rows) == N_USERS
    (perm,) = rows.epoch(0, 0, 4)
    assert sorted(perm.tolist()) == list(range(N_USERS))
    assert not torch.equal(perm, rows.epoch(0, 1, 4)[0])  # fresh shuffle per epoch
    assert torch.equal(perm, rows.epoch(0, 0, 4)[0])
    inputs, targets = rows.batch((perm[:5],))
    assert inputs.shape == targets.shape == (5, 200)
    real = inputs < N_ITEMS
    assert bool((real.sum(1) == SEQ_LEN - 3).all())  # train holds all but 2; the last is a target
    assert torch.equal(targets[real], (inputs[real] + 1) % N_ITEMS)  # the next movie
    half = rows.epoch(0, 0, 4, index=np.arange(0, N_USERS, 2))[0]
    assert torch.equal(half, perm[::2])


# ----------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained():
    split = cycle_split()
    return split, fit(split, cycle_config(), progress=False)


def test_the_one_loop_learns_the_next_item_rule(trained) -> None:
    split, result = trained
    losses = [h.loss for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.history[result.best_epoch - 1].val_hr10 >= 0.9
    metrics = evaluate(result.scorer(), split)
    assert metrics.sampled["hr@10"] >= 0.9 and metrics.full["hr@10"] >= 0.8


def test_the_sampled_loss_learns_it_too() -> None:
    split = cycle_split()
    result = fit(split, cycle_config(loss="sampled", epochs=25), progress=False)
    assert result.history[result.best_epoch - 1].val_hr10 >= 0.9


def test_a_liked_list_is_a_sequence_and_writes_nothing(trained) -> None:
    split, result = trained
    model = result.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    nxt = int(split.validation.items[split.validation.users == 0][0])
    liked = torch.tensor([(nxt - k) % N_ITEMS for k in range(1, SEQ_LEN - 1)])  # latest first
    scores = model.score_new_user(liked, FoldInConfig())
    assert int(scores.index_fill(0, liked, -torch.inf).argmax()) == nxt  # best unseen
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    as_user_0 = model.with_inputs(split.train).score_all(torch.tensor([0]))[0]
    torch.testing.assert_close(scores, as_user_0)  # user 0's training movies, as a liked list


def test_resume_replays_the_uninterrupted_run(tmp_path: Path) -> None:
    split = cycle_split()
    config = cycle_config(epochs=4, dropout=0.2, lr=1e-2)
    whole = fit(split, config, progress=False)
    fit(split, dataclasses.replace(config, epochs=2), run_dir=tmp_path, progress=False)
    resumed = fit(split, config, run_dir=tmp_path, resume=True, progress=False)
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in whole.history])
    for k, v in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, msg=k)


# ----------------------------------------------------------------------- DDP, 2 CPU ranks

DDP_SCRIPT = """
import sys
import torch
sys.path.insert(0, sys.argv[2])
from test_sasrec import cycle_config, cycle_split
from movierec.train import Parallel, fit
result = fit(cycle_split(), cycle_config(epochs=3), progress=False,
             parallel=Parallel(devices=2, strategy="ddp"))
if result.rank == 0:
    state = {k: v.cpu() for k, v in result.model.state_dict().items()}
    torch.save({"loss": [h.loss for h in result.history], "best": result.best_epoch,
                "state": state}, sys.argv[1])
"""
LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK")


def test_two_ddp_ranks_train_like_one_process(tmp_path: Path) -> None:
    """Dropout 0 and the full softmax: the same updates up to float summation order."""
    script, out = tmp_path / "ddp.py", tmp_path / "ddp.pt"
    script.write_text(DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV and k != "MASTER_PORT"}
    env["MOVIEREC_DEVICE"] = "cpu"
    cmd = [sys.executable, str(script), str(out), str(Path(__file__).parent)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    ddp = torch.load(out, weights_only=True)
    one = fit(cycle_split(), cycle_config(epochs=3), progress=False)
    assert ddp["loss"] == pytest.approx([h.loss for h in one.history], rel=1e-4)
    assert ddp["best"] == one.best_epoch
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(ddp["state"][k], v, rtol=0, atol=1e-3, msg=k)


@pytest.mark.parametrize(("kind", "default"), [("sasrec", 200), ("history", 20)])
def test_length_sets_how_many_latest_items_a_user_is_read_as(kind: str, default: int) -> None:
    config = TrainConfig.for_model(kind, length=7)
    assert build_model(config.model_config(3, 40)).history_len == 7
    assert build_model(TrainConfig.for_model(kind).model_config(3, 40)).history_len == default
    with pytest.raises(ValueError, match="length"):
        TrainConfig.for_model(kind, length=0)
