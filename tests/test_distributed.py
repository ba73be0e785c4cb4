"""Several processes: DDP training on 2 CPU ranks (gloo) and batch scoring in 2 processes.

The DDP runs go through the command line as a user would (``python -m movierec train
--devices 2 --strategy ddp --device cpu``: Lightning starts rank 1 by re-running the
command). With the global batch split across ranks (``training.ranks.shard_epoch``), two ranks make
the same updates as one process up to float summation order, so the comparisons below are
tight: per-epoch validation HR@10 within 0.02 (two of the fixture's 100 validation users),
sampled test HR@10 within 0.03, and weights within 1e-3 (observed: ~1e-6) at the DDP run's
best epoch (which may differ from the one process's where two epochs' HR nearly tie).
Batch scoring in 2 processes gives the same top-k as in one up to float32 rounding (other
blocks of users, other thread counts): ``tests/_close.py``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from _close import assert_same_ranking
from _train_fixtures import fast_config, planted_dataset
from lightning.pytorch.callbacks import Callback
from typer.testing import CliRunner

from movierec.artifacts import load_run, save_run
from movierec.batch import user_ranges
from movierec.cli import app
from movierec.data import Dataset
from movierec.evaluate import evaluate
from movierec.recommend import Recommender
from movierec.split import leave_last_out
from movierec.store import merge_stores, write_store_chunks
from movierec.train import (
    CHECKPOINT,
    TRAIN_LOG,
    Fixed,
    Parallel,
    TrainRows,
    fit,
    launch_rank,
    shard_batches,
    shard_epoch,
    threads_per_rank,
)

GMF = fast_config("gmf")  # factors 8, batch 512, lr 0.05, preset init_std 0.01
EPOCHS = 3
GMF_ARGS = ["--model", "gmf", "--factors", "8", "--batch", "512", "--lr", "0.05"]
LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK")


def write_movielens(ds: Dataset, path: Path) -> Path:
    """``ds`` as a MovieLens directory (ratings.csv, movies.csv) that ``--data`` reads."""
    path.mkdir(parents=True, exist_ok=True)
    i, c = ds.interactions, ds.catalog
    with open(path / "ratings.csv", "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for u, m, r, t in zip(
            ds.users.raw[i.users], ds.items.raw[i.items], i.ratings, i.timestamps
        ):
            f.write(f"{u},{m},{r:.1f},{t}\n")
    with open(path / "movies.csv", "w") as f:
        f.write("movieId,title,genres\n")
        for m, t, y, g in zip(c.movie_ids, c.titles, c.years, c.genres):
            f.write(f"{m},{t} ({y}),{g or '(no genres listed)'}\n")
    return path


def movierec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV and k != "MASTER_PORT"}
    env["MOVIEREC_DEVICE"] = "cpu"
    cmd = [sys.executable, "-m", "movierec", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def ddp_train(data: Path, out: Path, epochs: int, *extra: str) -> subprocess.CompletedProcess:
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", str(epochs), *GMF_ARGS]
    args += ["--device", "cpu", "--devices", "2", "--strategy", "ddp", "--no-progress", *extra]
    return movierec(*args, cwd=out.parent)


def log_rows(run: Path) -> list[dict[str, str]]:
    with open(run / TRAIN_LOG) as f:
        return list(csv.DictReader(f))


def close_weights(wa: dict, wb: dict, atol: float = 1e-3) -> None:
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k].cpu(), wb[k].cpu(), rtol=0, atol=atol, msg=k)


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    """A 2-rank DDP run on the planted data: (run dir, the finished process)."""
    root = tmp_path_factory.mktemp("ddp")
    data = write_movielens(planted_dataset(), root / "data")
    out = root / "run"
    return out, ddp_train(data, out, EPOCHS)


class EpochWeights(Callback):
    """Every epoch's weights (``weights[e - 1]`` after epoch e), to hold a DDP run's best
    epoch against the same epoch of one process: which epoch is best can flip between the
    two where validation HR@10 nearly ties (one user's rank, moved by float rounding)."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        state = pl_module.model.state_dict()
        self.weights.append({k: v.detach().cpu().clone() for k, v in state.items()})


def one_process(run, epochs: int) -> tuple[object, list[dict[str, torch.Tensor]]]:
    keep = EpochWeights()
    config = dataclasses.replace(run.config, device="cpu", epochs=epochs)
    return fit(run.split, config, progress=False, callbacks=[keep]), keep.weights


@pytest.fixture(scope="module")
def single(ddp):
    """One process on the same split and settings, trained in this process: 3 and 4 epochs,
    each with its per-epoch weights."""
    torch.set_num_threads(1)
    run = load_run(ddp[0])
    return run, one_process(run, EPOCHS), one_process(run, EPOCHS + 1)


def same_best_epoch(best: int, ddp_hr: list[float], one) -> dict[str, torch.Tensor]:
    """Check a DDP run's best epoch against one process's (``one``: result, weights) and
    return that process's weights at the DDP run's best epoch.

    The best epoch is the first of highest validation HR@10 in the run's own log. Each
    epoch's HR may differ by 0.02 between the two (float summation order), so the one
    process's HR at that epoch is within 0.04 of its best: the same epoch, unless two nearly
    tie."""
    result, weights = one
    assert best == 1 + int(np.argmax(ddp_hr))
    one_hr = [h.val_hr10 for h in result.history]
    assert one_hr[best - 1] >= max(one_hr) - 0.04
    assert len(weights) == len(one_hr)
    return weights[best - 1]


# ----------------------------------------------------------------------- sharding (no processes


@pytest.mark.parametrize(
    ("n_rows", "batch", "world"),
    [(14_000, 512, 2), (14_000, 512, 3), (1_000, 7, 4), (1_029, 512, 4), (5, 4, 4), (3, 8, 2)],
)
def test_rank_shards_cover_every_row_of_an_epoch_exactly_once(n_rows, batch, world) -> None:
    shards = [shard_epoch(n_rows, batch, world, rank) for rank in range(world)]
    steps = -(-n_rows // batch)
    assert all(s.steps == steps for s in shards)  # DDP: equal step counts on every rank
    together = np.concatenate([s.index for s in shards])
    np.testing.assert_array_equal(np.sort(together), np.arange(n_rows))  # each row once
    for s in shards:
        assert s.index.size == s.sizes.sum()
        np.testing.assert_array_equal(s.step_rows, shards[0].step_rows)
    # step k: the ranks' pieces, in rank order, are exactly one process's batch k
    ends = [np.cumsum(s.sizes) for s in shards]
    for k in range(steps):
        pieces = [
            s.index[e[k] - sz : e[k]]
            for s, e, sz in zip(shards, ends, [s.sizes[k] for s in shards])
        ]
        np.testing.assert_array_equal(
            np.concatenate(pieces), np.arange(k * batch, min((k + 1) * batch, n_rows))
        )
        sizes = [s.sizes[k] for s in shards]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_a_rank_trains_on_its_rows_of_the_one_process_epoch() -> None:
    split = leave_last_out(planted_dataset().interactions)
    rows = TrainRows.from_split(split, torch.device("cpu"))
    whole = rows.epoch(seed=0, epoch=1, negatives=4)
    n = whole[0].numel()
    for rank in range(2):
        shard = shard_epoch(n, 512, 2, rank)
        mine = rows.epoch(seed=0, epoch=1, negatives=4, index=shard.index)
        for got, want in zip(mine, whole, strict=True):
            torch.testing.assert_close(got, want[torch.as_tensor(shard.index)], rtol=0, atol=0)


def test_validation_batches_split_across_ranks_keep_their_count_and_users() -> None:
    users = torch.arange(10)
    batches = Fixed([(users[:7], users[:7, None]), (users[7:], users[7:, None])])
    parts = [shard_batches(batches, 3, rank, torch.device("cpu")) for rank in range(3)]
    assert all(len(p) == len(batches) for p in parts)  # same validation steps on every rank
    got = torch.cat([u for p in parts for u, _ in p])
    assert sorted(got.tolist()) == list(range(10))


def test_parallel_options_launch_ranks_and_threads() -> None:
    assert Parallel().world_size == 1 and not Parallel().distributed
    assert Parallel(devices=4, num_nodes=2, strategy="ddp").world_size == 8
    for bad, match in [
        (dict(devices=0), "--devices"),
        (dict(num_nodes=0), "--num-nodes"),
        (dict(num_nodes=2), "--strategy ddp"),
        (dict(strategy="fsdp"), "unknown strategy"),
    ]:
        with pytest.raises(ValueError, match=match):
            Parallel(**bad)
    assert launch_rank({}) == 0
    assert launch_rank({"RANK": "5", "LOCAL_RANK": "1"}) == 5  # torchrun
    assert launch_rank({"NODE_RANK": "1", "LOCAL_RANK": "1"}, devices=4) == 5  # Lightning
    assert (
        threads_per_rank(16, 4) == 4 and threads_per_rank(2, 4) == 1 and threads_per_rank(3, 2) == 1
    )


def test_cli_refuses_bad_parallel_options_cleanly(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["train", "--data", "nowhere", "--out", str(tmp_path / "r"), "--device", "cpu"]
    for extra, message in [
        (["--devices", "0"], "--devices must be at least 1"),
        (["--num-nodes", "2"], "needs --strategy ddp"),
        (["--strategy", "fsdp"], "unknown strategy"),
    ]:
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output and "Traceback" not in result.output
    bad = runner.invoke(
        app, ["batch", str(tmp_path), "--out", str(tmp_path / "x"), "--devices", "0"]
    )
    assert bad.exit_code == 2 and "--devices must be at least 1" in bad.output
    if not torch.cuda.is_available():
        gpu = runner.invoke(
            app, ["batch", str(tmp_path), "--out", str(tmp_path / "x"), "--device", "cuda"]
        )
        assert gpu.exit_code == 2 and "CUDA is not available" in gpu.output


# ----------------------------------------------------------------------- DDP training, 2 ranks


def test_ddp_run_is_valid_and_scores_like_one_process(ddp, single) -> None:
    out, done = ddp
    run, (three, _), _ = single
    assert done.stdout.count("best epoch") == 1  # only rank 0 reports
    assert done.stderr.count("training interactions") == 1
    ddp_val = [float(r["val_hr@10"]) for r in log_rows(out)]
    assert ddp_val == pytest.approx([h.val_hr10 for h in three.history], abs=0.02)
    ours = evaluate(run.model, run.split, full=False).sampled["hr@10"]
    theirs = evaluate(three.scorer(), run.split, full=False).sampled["hr@10"]
    assert ours >= 0.9 and abs(ours - theirs) <= 0.03
    twin = same_best_epoch(run.training["best_epoch"], ddp_val, single[1])
    close_weights(run.model.model.state_dict(), twin)


def test_ddp_writes_one_checkpoint_and_one_train_log(ddp) -> None:
    out, _ = ddp
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [f for f in files if f.endswith(".ckpt")] == [CHECKPOINT.as_posix()]
    assert TRAIN_LOG in files
    assert not [p for p in out.parent.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    assert [r["epoch"] for r in log_rows(out)] == ["1", "2", "3"]  # one writer, no duplicates
    saved = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    assert len(saved["movierec"]["history"]) == EPOCHS


def test_ddp_resume_after_the_run_continues_it(ddp, single, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(ddp[0], out)
    data = ddp[0].parent / "data"
    before = log_rows(out)
    ddp_train(data, out, EPOCHS + 1, "--resume")
    after = log_rows(out)
    assert [r["epoch"] for r in after] == ["1", "2", "3", "4"]
    assert after[:EPOCHS] == before  # the epochs already run are kept, not rerun
    four = single[2]
    got = [float(r["val_hr@10"]) for r in after]
    assert got == pytest.approx([h.val_hr10 for h in four[0].history], abs=0.02)
    resumed = load_run(out)
    twin = same_best_epoch(resumed.training["best_epoch"], got, four)
    close_weights(resumed.model.model.state_dict(), twin)


def test_the_history_model_trains_in_ddp_like_one_process(ddp, tmp_path: Path) -> None:
    """The one loop gives the history model DDP: 2 ranks, same epochs as one process."""
    data, out = ddp[0].parent / "data", tmp_path / "history"
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", "2"]
    args += ["--model", "history", "--factors", "16", "--batch", "256", "--lr", "0.02"]
    args += ["--negatives", "16", "--device", "cpu", "--devices", "2", "--strategy", "ddp"]
    done = movierec(*args, "--no-progress", cwd=tmp_path)
    assert done.stdout.count("best epoch") == 1
    run = load_run(out)
    config = dataclasses.replace(run.config, device="cpu")
    one = fit(run.split, config, progress=False)
    got = [float(r["val_hr@10"]) for r in log_rows(out)]
    assert got == pytest.approx([h.val_hr10 for h in one.history], abs=0.02)
    if run.training["best_epoch"] == one.best_epoch:
        close_weights(run.model.model.state_dict(), one.model.state_dict())


# ----------------------------------------------------------------------- batch in 2 processes


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    ds = planted_dataset()
    split = leave_last_out(ds.interactions)
    path = tmp_path_factory.mktemp("batch") / "run"
    save_run(path, fit(split, dataclasses.replace(GMF, epochs=2), progress=False), ds, split)
    return path


def store_contents(path: Path) -> tuple[list, list, dict]:
    with sqlite3.connect(path) as conn:
        recs = conn.execute(
            "SELECT user_id, rank, movie_id, score FROM recs ORDER BY user_id, rank"
        ).fetchall()
        movies = conn.execute("SELECT * FROM movies ORDER BY id").fetchall()
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key != 'created_at'"))
    return recs, movies, meta


def as_lists(rows: list[tuple[int, int, int, float]], k: int) -> tuple[np.ndarray, ...]:
    """(user_id, rank, movie_id, score) rows ordered by user and rank -> user ids (U,),
    movie ids (U, k) padded with -1, scores (U, k) padded with -inf; ranks must be 1, 2, ..."""
    users = np.unique([r[0] for r in rows])
    movies, scores = np.full((users.size, k), -1), np.full((users.size, k), -np.inf)
    at = np.searchsorted(users, [r[0] for r in rows])
    for u, (_, rank, movie, score) in zip(at, rows, strict=True):
        assert movies[u, rank - 1] == -1 and (rank == 1 or movies[u, rank - 2] >= 0)
        movies[u, rank - 1], scores[u, rank - 1] = movie, score
    return users, movies, scores


def assert_same_recommendations(a: list[tuple], b: list[tuple], k: int) -> None:
    """The same users, and for each the same top-k up to float32 rounding: another split
    of the users scores other block shapes with other thread counts."""
    (ua, ma, sa), (ub, mb, sb) = as_lists(a, k), as_lists(b, k)
    np.testing.assert_array_equal(ua, ub)
    assert_same_ranking(ma, sa, mb, sb)


def test_batch_in_two_processes_equals_one(small_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outs = {}
    for devices in (1, 2):
        out = tmp_path / f"d{devices}" / "recs.sqlite"
        pq_out = out.with_suffix(".parquet")
        args = [
            "batch",
            str(small_run),
            "--out",
            str(out),
            "--parquet",
            str(pq_out),
            "--depth",
            "10",
        ]
        result = runner.invoke(
            app, [*args, "--devices", str(devices), "--chunk", "16", "--no-progress"]
        )
        assert result.exit_code == 0, result.output
        assert "100 users x top 10" in result.output
        assert sorted(p.name for p in out.parent.iterdir()) == ["recs.parquet", "recs.sqlite"]
        outs[devices] = (store_contents(out), pq.read_table(pq_out))
    (one, one_pq), (two, two_pq) = outs[1], outs[2]
    assert len(one[0]) == len(two[0]) == 1000
    assert_same_recommendations(one[0], two[0], 10)
    assert one[1:] == two[1:]  # movies and meta: no floats from scoring
    assert one_pq.schema == two_pq.schema and one_pq.num_rows == 1000
    for table, store in ((one_pq, one), (two_pq, two)):  # each Parquet file is its store
        cols = table.to_pydict()
        rows = list(zip(*(cols[c] for c in ("user_id", "rank", "movie_id", "score"))))
        assert [r[:3] for r in rows] == [r[:3] for r in store[0]]
        np.testing.assert_array_equal(
            np.float32([r[3] for r in rows]), np.float32([r[3] for r in store[0]])
        )


def test_a_failed_merge_leaves_the_previous_store_and_no_temporary_files(
    small_run: Path, tmp_path: Path
) -> None:
    r = Recommender.load(small_run)
    users = r.users.raw[:3]
    block = (users, np.tile(r.items.raw[:2], (3, 1)), np.ones((3, 2)))
    part_a = write_store_chunks(tmp_path / "a", [block], r.catalog, progress=False).path
    part_b = write_store_chunks(tmp_path / "b", [block], r.catalog, progress=False).path
    out = tmp_path / "recs.sqlite"
    merge_stores(out, [part_a], {"v": 1})
    with pytest.raises(sqlite3.IntegrityError):  # the same users in two parts
        merge_stores(out, [part_a, part_b], {"v": 2})
    assert store_contents(out)[2]["v"] == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "recs.sqlite"]


def test_user_ranges_split_users_in_order() -> None:
    assert user_ranges(10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    assert user_ranges(1, 2) == [range(0, 1), range(1, 1)]
