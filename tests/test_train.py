"""Training: every model learns planted structure; seeds reproduce; resume replays exactly."""

from __future__ import annotations

import csv
import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from _train_fixtures import fast_config, planted_dataset, planted_split
from typer.testing import CliRunner

from movierec import metrics
from movierec.checkpoint import ResumeError, data_fingerprint, digest_path
from movierec.errors import MovierecError
from movierec.evaluate import evaluate
from movierec.models import build_model
from movierec.sampling import is_seen, seen_keys
from movierec.train import (
    CHECKPOINT,
    PRESETS,
    TRAIN_LOG,
    TrainConfig,
    TrainRows,
    auto_batch_size,
    fit,
    resolve_device,
    validation_batches,
)
from movierec.training.batches import sampled_sums
from movierec.training.epochs import CausalRows
from movierec.training.loop import DivergedError

torch.set_num_threads(1)  # tiny tensors: a second thread only adds synchronisation


@pytest.fixture(scope="module")
def split():
    return planted_split()


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("model", ["tutorial", "gmf", "mlp", "neumf"])
def test_every_model_learns_the_planted_blocks(split, model: str) -> None:
    result = fit(split, fast_config(model), progress=False)
    assert result.best.val_hr10 >= 0.9
    test = evaluate(result.scorer(), split, full=False).sampled
    assert test["hr@10"] >= 0.9, (model, test)
    assert result.history[0].loss > result.history[-1].loss


def test_same_seed_same_weights_other_seed_other_weights(split) -> None:
    a = fit(split, fast_config("gmf", epochs=2), progress=False)
    b = fit(split, fast_config("gmf", epochs=2), progress=False)
    c = fit(split, fast_config("gmf", epochs=2, seed=1), progress=False)
    assert_same_weights(a.model, b.model)
    assert not torch.equal(a.model.mf.user.weight, c.model.mf.user.weight)
    assert [h.val_hr10 for h in a.history] == [h.val_hr10 for h in b.history]


def test_fit_leaves_a_log_and_a_weights_only_checkpoint(split, tmp_path: Path) -> None:
    result = fit(split, fast_config("gmf", epochs=3), run_dir=tmp_path, progress=False)
    with open(tmp_path / TRAIN_LOG) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {"epoch", "loss", "val_hr@10", "val_ndcg@10", "rows/s", "seconds"}
    assert float(rows[1]["val_hr@10"]) == pytest.approx(result.history[1].val_hr10, abs=1e-6)
    assert all(float(r["rows/s"]) > 0 for r in rows)
    ckpt = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["movierec"]["history"]) == 3
    assert "optimizer_states" in ckpt and "state_dict" in ckpt


class Crash(L.Callback):
    """Stops the run like a crash: at the start of epoch ``at`` (0-based)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.at:
            raise RuntimeError("simulated crash")


def test_resume_after_a_crash_replays_the_uninterrupted_run(split, tmp_path: Path) -> None:
    config = fast_config("neumf", epochs=4)
    whole = fit(split, config, progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(split, config, run_dir=tmp_path, progress=False, callbacks=[Crash(at=2)])
    saved = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=True)
    assert len(saved["movierec"]["history"]) == 2
    resumed = fit(split, config, run_dir=tmp_path, resume=True, progress=False)
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    assert [h.val_hr10 for h in resumed.history] == [h.val_hr10 for h in whole.history]
    assert_same_weights(resumed.model, whole.model)
    with open(tmp_path / TRAIN_LOG) as f:
        assert len(list(csv.DictReader(f))) == 4
    # resuming a finished run trains nothing and returns the same model
    again = fit(split, config, run_dir=tmp_path, resume=True, progress=False)
    assert_same_weights(again.model, whole.model)
    # ... and with more epochs, it continues where it stopped
    longer = fit(split, dataclasses.replace(config, epochs=5), run_dir=tmp_path, resume=True)
    assert [h.epoch for h in longer.history] == [1, 2, 3, 4, 5]


def test_resume_refuses_other_settings(split, tmp_path: Path) -> None:
    fit(split, fast_config("gmf", epochs=1), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="lr"):
        fit(split, fast_config("gmf", epochs=2, lr=0.5), run_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="run_dir"):
        fit(split, fast_config("gmf"), resume=True)


def test_early_stopping_keeps_the_best_epoch(split) -> None:
    # GMF saturates at HR@10 = 1.0 within two epochs; nothing can beat that afterwards
    config = fast_config("gmf", epochs=10, patience=2, lr=0.05)
    result = fit(split, config, progress=False)
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 2 < 10
    assert result.best.val_hr10 == max(h.val_hr10 for h in result.history)
    # the returned weights are the best epoch's: a run stopped there has the same weights
    short = fit(split, dataclasses.replace(config, epochs=result.best_epoch), progress=False)
    assert_same_weights(result.model, short.model)


def test_an_epoch_is_every_positive_once_and_fresh_unseen_negatives(split) -> None:
    rows = TrainRows.from_split(split, torch.device("cpu"))
    users, items, labels = rows.epoch(seed=0, epoch=0, negatives=4)
    n_pos = len(split.train)
    assert users.numel() == 5 * n_pos and int(labels.sum()) == n_pos
    pos = labels.bool().numpy()
    got = np.sort(users.numpy()[pos].astype(np.int64) * split.n_items + items.numpy()[pos])
    want = np.sort(split.train.users.astype(np.int64) * split.n_items + split.train.items)
    np.testing.assert_array_equal(got, want)
    keys = seen_keys(split.seen_anywhere())
    assert not is_seen(keys, users.numpy()[~pos], items.numpy()[~pos], split.n_items).any()
    assert not pos[:n_pos].all()  # shuffled, not positives first
    again = rows.epoch(seed=0, epoch=0, negatives=4)
    assert torch.equal(again[1], items)
    assert not torch.equal(rows.epoch(seed=0, epoch=1, negatives=4)[1], items)


def test_validation_uses_evaluates_candidates_or_a_fixed_subset_of_users(split) -> None:
    from movierec.evaluate import holdout

    whole = validation_batches(split, seed=3, device=torch.device("cpu"))
    users = torch.cat([u for u, _ in whole]).numpy()
    items = torch.cat([i for _, i in whole]).numpy()
    h = holdout(split, part="validation", seed=3)
    np.testing.assert_array_equal(users, h.users)
    np.testing.assert_array_equal(items[:, 0], h.targets)
    np.testing.assert_array_equal(items[:, 1:], h.candidates)
    some = validation_batches(split, seed=3, device=torch.device("cpu"), max_users=30)
    picked = torch.cat([u for u, _ in some]).numpy()
    assert picked.size == 30 and np.all(np.diff(picked) > 0) and np.isin(picked, users).all()


def test_sampled_sums_count_ties_at_their_expectation_as_evaluate_does() -> None:
    logits = torch.tensor([[1.0] * 100, [5.0] + [0.0] * 99, [0.0] + [1.0] * 9 + [-1.0] * 90])
    hits, gain = sampled_sums(logits)
    # row 0: all tied -> a uniform position among 100, a hit 1 time in 10 (a constant model
    # scores HR@10 = 0.10); row 1: rank 0; row 2: rank 9, a hit at the edge
    gains = 1.0 / np.log2(np.arange(10) + 2.0)
    assert hits == pytest.approx(0.1 + 2.0)
    assert gain == pytest.approx(gains.sum() / 100 + 1.0 + 1.0 / math.log2(11))
    ranks = metrics.rank_of_target(logits[:, 0].numpy(), logits[:, 1:].numpy())
    ties = metrics.ties_of_target(logits[:, 0].numpy(), logits[:, 1:].numpy())
    assert hits == pytest.approx(3 * metrics.hit_rate(ranks, 10, ties))


def test_device_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setenv("MOVIEREC_DEVICE", "meta")
    assert resolve_device("cpu") == torch.device("cpu")  # the argument wins
    assert resolve_device("auto") == torch.device("meta")
    monkeypatch.delenv("MOVIEREC_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu9")


def test_config_presets_and_validation() -> None:
    tutorial = TrainConfig.for_model("tutorial")
    assert (tutorial.factors, tutorial.layers, tutorial.negatives, tutorial.epochs) == (
        8,
        (64, 32),
        4,
        5,
    )
    assert TrainConfig.for_model("mlp", lr=None).lr == TrainConfig().lr  # None: keep preset
    assert TrainConfig.for_model("gmf", factors=16).factors == 16
    assert {"tutorial", "gmf", "mlp", "neumf"} <= set(PRESETS)
    for model in PRESETS:
        c = TrainConfig.for_model(model)
        assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig.for_model("svd")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"epochz": 3})


def test_automatic_batch_size_grows_with_the_data_and_lr_with_its_root(split) -> None:
    assert auto_batch_size(14_000) == 512  # the planted fixture
    assert auto_batch_size(487_000) == 512  # ml-latest-small: ~950 steps per epoch
    assert auto_batch_size(8_000_000) == 8192
    assert auto_batch_size(13_400_000) == auto_batch_size(10**9) == 16384
    auto = TrainConfig.for_model("tutorial")
    assert auto.batch_size is None and auto.lr is None
    concrete = auto.resolved(rows_per_epoch=13_400_000)
    assert concrete.batch_size == 16384 and concrete.lr == pytest.approx(1e-3 * 32**0.5)
    explicit = TrainConfig.for_model("tutorial", batch_size=16384).resolved(1)
    assert auto.resolved(10**9).lr == explicit.lr
    given = TrainConfig.for_model("tutorial", batch_size=2048, lr=0.01).resolved(10**9)
    assert (given.batch_size, given.lr) == (2048, 0.01)
    auto_gmf = dataclasses.replace(fast_config("gmf", epochs=1), batch_size=None, lr=None)
    result = fit(split, auto_gmf, progress=False)
    assert (result.config.batch_size, result.config.lr) == (512, 1e-3)


def test_fit_rejects_an_init_of_another_shape(split) -> None:
    other = fit(split, fast_config("gmf", epochs=1, factors=4), progress=False).model
    with pytest.raises(ValueError, match="init"):
        fit(split, fast_config("gmf", epochs=1, factors=8), init=other, progress=False)


def test_cli_train_writes_a_run_and_fails_cleanly(tmp_path: Path) -> None:
    from movierec.artifacts import load_run
    from movierec.cli import app

    runner = CliRunner()
    out = tmp_path / "run"
    args = ["train", "--data", "ml-latest-small", "--out", str(out), "--epochs", "1"]
    result = runner.invoke(app, [*args, "--batch", "8192", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert run.config.epochs == 1 and run.config.batch_size == 8192
    assert run.data["source"] == "ml-latest-small"
    bad = runner.invoke(app, ["train", "--data", str(tmp_path / "nowhere"), "--out", str(out)])
    assert bad.exit_code == 2 and "error:" in bad.output
    bad = runner.invoke(app, [*args, "--model", "svd"])
    assert bad.exit_code == 2 and "unknown model" in bad.output


# ----------------------------------------------------------------------------- resume, refusals


def crashed_run(split, config, run_dir: Path, at: int = 2) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(split, config, run_dir=run_dir, progress=False, callbacks=[Crash(at=at)])


@pytest.mark.parametrize("model", ["gmf", "history"])
def test_resume_refuses_a_damaged_checkpoint(split, tmp_path: Path, model: str) -> None:
    config = fast_history(epochs=2) if model == "history" else fast_config("gmf", epochs=2)
    fit(split, config, run_dir=tmp_path, progress=False)
    ckpt = tmp_path / CHECKPOINT
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ResumeError, match=r"last\.ckpt: damaged \(truncated or altered"):
        fit(split, config, run_dir=tmp_path, resume=True, progress=False)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # same size, one bit off: torch.load would not notice
    ckpt.write_bytes(bytes(flipped))
    with pytest.raises(ResumeError, match="damaged"):
        fit(split, config, run_dir=tmp_path, resume=True, progress=False)
    ckpt.write_bytes(data)
    digest_path(ckpt).unlink()  # e.g. a checkpoint written before digests existed
    with pytest.raises(ResumeError, match=r"no digest beside it \(last\.ckpt\.sha256\)"):
        fit(split, config, run_dir=tmp_path, resume=True, progress=False)


def test_a_kill_between_digest_and_checkpoint_leaves_a_resumable_checkpoint(
    split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from movierec import checkpoint

    config = fast_config("gmf", epochs=2)
    fit(split, dataclasses.replace(config, epochs=1), run_dir=tmp_path, progress=False)
    ckpt = tmp_path / CHECKPOINT
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    torch.save({**saved, "epoch": 99}, ckpt.with_suffix(".tmp"))  # the next one, written
    real, calls = os.replace, []

    def dying(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the digest is in place, the checkpoint not yet
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "replace", dying)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.publish(ckpt.with_suffix(".tmp"), ckpt)
    monkeypatch.undo()
    assert calls == [digest_path(ckpt), ckpt]
    resumed = fit(split, config, run_dir=tmp_path, resume=True, progress=False)
    assert [h.epoch for h in resumed.history] == [1, 2]


@pytest.mark.parametrize("model", ["neumf", "history"])
def test_resume_refuses_other_data_of_the_same_shape(split, tmp_path: Path, model: str) -> None:
    config = fast_history(epochs=3) if model == "history" else fast_config("neumf", epochs=3)
    fit(split, dataclasses.replace(config, epochs=1), run_dir=tmp_path, progress=False)
    other = planted_split(seed=1)  # another draw: same users and items, other interactions
    assert (other.n_users, other.n_items) == (split.n_users, split.n_items)
    with pytest.raises(ResumeError, match="trained on other data") as err:
        fit(other, config, run_dir=tmp_path, resume=True, progress=False)
    assert "\n" not in str(err.value) and "without --resume" in str(err.value)


def test_resume_refuses_a_checkpoint_of_another_model(split, tmp_path: Path) -> None:
    fit(split, fast_config("gmf", epochs=1), run_dir=tmp_path, progress=False)
    with pytest.raises(ResumeError, match="model: 'gmf' -> 'history'"):
        fit(split, fast_history(epochs=2), run_dir=tmp_path, resume=True, progress=False)


def test_the_data_fingerprint_sees_any_change(split) -> None:
    base = data_fingerprint(split)
    assert data_fingerprint(planted_split()) == base  # same data, same fingerprint
    ratings = split.train.ratings.copy()
    ratings[0] += 0.5  # one rating
    changed = dataclasses.replace(split, train=dataclasses.replace(split.train, ratings=ratings))
    assert data_fingerprint(changed) != base
    moved = split.test.timestamps.copy()
    moved[-1] += 1  # one timestamp of another part
    changed = dataclasses.replace(split, test=dataclasses.replace(split.test, timestamps=moved))
    assert data_fingerprint(changed) != base


FAST_HISTORY = dict(factors=16, epochs=4, batch_size=256, lr=2e-2, negatives=16, patience=None)


def fast_history(**overrides) -> TrainConfig:
    return TrainConfig.for_model("history", **{**FAST_HISTORY, "device": "cpu", **overrides})


def test_history_resume_after_a_crash_replays_the_uninterrupted_run(
    split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = fast_history(epochs=4)
    whole = fit(split, config, progress=False)
    real, epochs = CausalRows.epoch, []

    def crashing(self, seed, epoch, negatives, **kw):
        epochs.append(epoch)
        if epoch == 2 and len(epochs) == 3:  # the first run, at its third epoch
            raise RuntimeError("simulated crash")
        return real(self, seed, epoch, negatives, **kw)

    monkeypatch.setattr(CausalRows, "epoch", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(split, config, run_dir=tmp_path, progress=False)
    resumed = fit(split, config, run_dir=tmp_path, resume=True, progress=False)
    assert epochs == [0, 1, 2, 2, 3]  # the resume ran only the epochs left
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    assert [h.val_hr10 for h in resumed.history] == [h.val_hr10 for h in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    assert_same_weights(resumed.model, whole.model)
    with open(tmp_path / TRAIN_LOG) as f:
        assert len(list(csv.DictReader(f))) == 4
    again = fit(split, config, run_dir=tmp_path, resume=True, progress=False)  # finished
    assert epochs == [0, 1, 2, 2, 3] and len(again.history) == 4
    assert_same_weights(again.model, whole.model)


# ----------------------------------------------------------------------------- killed for real


def planted_release(root: Path) -> Path:
    """The planted data as MovieLens CSV files (what `movierec train --data` reads)."""
    ds = planted_dataset()
    inter = ds.interactions
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "ratings.csv", "w") as f:
        f.write("userId,movieId,rating,timestamp\n")
        for u, i, r, t in zip(inter.users, inter.items, inter.ratings, inter.timestamps):
            f.write(f"{ds.users.raw[u]},{ds.items.raw[i]},{r:.1f},{t}\n")
    with open(root / "movies.csv", "w") as f:
        f.write("movieId,title,genres\n")
        for m, title in zip(ds.catalog.movie_ids, ds.catalog.titles):
            f.write(f"{m},{title} (2012),Drama\n")
    return root


def test_a_training_killed_with_sigkill_leaves_the_previous_run(tmp_path: Path) -> None:
    """`movierec train` twice into one --out, the second killed (SIGKILL) mid-training: the
    first run still loads with its weights and metrics; --resume finishes the second."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from movierec.artifacts import load_run, work_dir
    from movierec.cli import app

    data, out = planted_release(tmp_path / "data"), tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--model", "history"]
    args += ["--factors", "16", "--negatives", "8", "--device", "cpu", "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--epochs", "2"])
    assert first.exit_code == 0, first.output
    assert runner.invoke(app, ["evaluate", str(out)]).exit_code == 0
    before = load_run(out)
    ckpt = work_dir(out) / CHECKPOINT
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    second = [sys.executable, "-m", "movierec", *args, "--epochs", "100000", "--patience", "100000"]
    proc = subprocess.Popen(second, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt.exists(), proc.stderr.read().decode() if proc.poll() is not None else ""
        time.sleep(0.3)  # a few more epochs
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    after = load_run(out)
    assert after.metrics == before.metrics is not None and after.training == before.training
    users = np.arange(before.split.n_users)
    np.testing.assert_array_equal(after.model.score_all(users), before.model.score_all(users))
    assert runner.invoke(app, ["evaluate", str(out)]).exit_code == 0
    # the killed training resumes from its work directory
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["movierec"]
    done = len(saved["history"])
    resumed = runner.invoke(app, [*args, "--epochs", str(done + 1), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming the interrupted training" in resumed.output
    assert load_run(out).training["epochs_run"] == done + 1
    assert not work_dir(out).exists()


def test_movierec_run_again_keeps_the_previous_run_until_the_new_one_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import movierec.train
    from movierec.artifacts import load_run
    from movierec.cli import app

    data, out = planted_release(tmp_path / "data"), tmp_path / "latest"
    args = ["run", "--data", str(data), "--out", str(out), "--model", "gmf"]
    args += ["--peers", "popularity", "--device", "cpu", "--no-progress"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    before = load_run(out)
    real = movierec.train.fit

    def crashing(*a, **kw):  # the second run dies in its second epoch
        return real(*a, **{**kw, "callbacks": [Crash(at=1)]})

    monkeypatch.setattr(movierec.train, "fit", crashing)
    second = CliRunner().invoke(app, args)
    assert isinstance(second.exception, RuntimeError)
    after = load_run(out)
    assert after.training == before.training
    users = np.arange(before.split.n_users)
    np.testing.assert_array_equal(after.model.score_all(users), before.model.score_all(users))


def test_a_nan_loss_stops_training_with_a_clear_error(split, tmp_path: Path) -> None:
    config = fast_config("gmf", epochs=3)
    torch.manual_seed(0)
    model = build_model(config.model_config(split.n_users, split.n_items))
    with torch.no_grad():
        model.predict.weight.fill_(math.nan)  # every logit, so every loss, is NaN
    with pytest.raises(DivergedError, match=r"loss is nan in epoch 1 .*smaller --lr"):
        fit(split, config, run_dir=tmp_path, init=model, progress=False)
    assert not (tmp_path / CHECKPOINT).exists()  # nothing saved from the diverged epoch
    assert issubclass(DivergedError, MovierecError)


def test_serving_imports_neither_lightning_nor_the_training_loop() -> None:
    code = (
        "import sys, movierec.artifacts, movierec.recommend\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'lightning'"
        " or m in ('movierec.training.loop', 'movierec.training.fit', 'movierec.train')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
