"""Run directory: save -> load gives the same model and data; damage is named, never trusted."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from _train_fixtures import fast_config, planted_dataset

from movierec.artifacts import (
    CATALOG,
    CONFIG,
    DERIVED,
    INTERACTIONS,
    ITEMS,
    MANIFEST,
    METRICS,
    USERS,
    WEIGHTS,
    ArtifactError,
    load_run,
    save_metrics,
    save_run,
    verify_run,
)
from movierec.split import leave_last_out
from movierec.train import CHECKPOINT, TRAIN_LOG, fit

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained():
    ds = planted_dataset()
    split = leave_last_out(ds.interactions)
    result = fit(split, fast_config("neumf", epochs=2), progress=False)
    return ds, split, result


@pytest.fixture
def run_dir(trained, tmp_path: Path) -> Path:
    ds, split, result = trained
    data = {"source": "planted", "prepare": {"min_year": None}}
    return save_run(tmp_path / "run", result, ds, split, data=data)


def test_save_then_load_gives_identical_scores_and_data(trained, run_dir: Path) -> None:
    ds, split, result = trained
    run = load_run(run_dir, device="cpu")
    users = np.arange(split.n_users)
    np.testing.assert_array_equal(run.model.score_all(users), result.scorer().score_all(users))
    assert run.config == result.config and run.model_config == result.model_config
    np.testing.assert_array_equal(run.users.raw, ds.users.raw)
    np.testing.assert_array_equal(run.items.raw, ds.items.raw)
    for field in ("movie_ids", "titles", "years", "genres"):
        np.testing.assert_array_equal(getattr(run.catalog, field), getattr(ds.catalog, field))
    for part in ("train", "validation", "test"):
        a, b = getattr(run.split, part), getattr(split, part)
        for column in ("users", "items", "timestamps", "ratings"):
            np.testing.assert_array_equal(getattr(a, column), getattr(b, column))
        assert (a.n_users, a.n_items) == (b.n_users, b.n_items)
    assert run.data["source"] == "planted"
    assert run.training["best_epoch"] == result.best_epoch
    assert run.metrics is None


def test_catalogue_links_are_saved_and_runs_without_them_still_load(trained, tmp_path) -> None:
    import pyarrow.parquet as pq

    from movierec.artifacts.manifest import describe, write_manifest

    ds, split, result = trained
    n = len(ds.catalog)
    imdb = np.where(np.arange(n) % 3 == 0, -1, np.arange(n) + 100_000)
    catalog = dataclasses.replace(ds.catalog, imdb_ids=imdb, tmdb_ids=np.arange(n) - 1)
    run = save_run(tmp_path / "run", result, dataclasses.replace(ds, catalog=catalog), split)
    loaded = load_run(run, device="cpu").catalog
    np.testing.assert_array_equal(loaded.imdb_ids, imdb)
    np.testing.assert_array_equal(loaded.tmdb_ids, np.arange(n) - 1)
    # a run written before the link columns existed: every link unknown
    table = pq.read_table(run / CATALOG)
    pq.write_table(table.drop_columns(["imdb_id", "tmdb_id"]), run / CATALOG)
    files = json.loads((run / MANIFEST).read_text())["files"]
    write_manifest(run, {**files, CATALOG: describe(run / CATALOG)})
    old = load_run(run, device="cpu").catalog
    assert (old.imdb_ids == -1).all() and (old.tmdb_ids == -1).all()
    np.testing.assert_array_equal(old.titles, ds.catalog.titles)


def test_manifest_lists_every_file_with_its_sha256(run_dir: Path) -> None:
    manifest = json.loads((run_dir / MANIFEST).read_text())
    listed = set(manifest["files"])
    on_disk = {p.name for p in run_dir.iterdir() if p.is_file() and p.name != MANIFEST}
    assert listed == on_disk >= {CONFIG, WEIGHTS, USERS, ITEMS, CATALOG, INTERACTIONS, TRAIN_LOG}
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in manifest["files"].values())
    assert not list(run_dir.parent.glob(".run.*"))  # no temporary directories left behind


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "damage", "problem"),
    [
        (WEIGHTS, flip_a_byte, "altered"),
        (CONFIG, lambda p: p.write_text(p.read_text().replace('"lr"', '"lR"')), "altered"),
        (USERS, lambda p: p.write_bytes(p.read_bytes()[:-8]), "truncated"),
        (CATALOG, lambda p: p.unlink(), "missing"),
        (MANIFEST, lambda p: p.unlink(), "missing"),
        (MANIFEST, lambda p: p.write_text("{not json"), "unreadable"),
    ],
)
def test_damage_raises_an_artifact_error_naming_the_file(
    run_dir: Path, name: str, damage, problem: str
) -> None:
    damage(run_dir / name)
    with pytest.raises(ArtifactError, match=problem) as err:
        load_run(run_dir)
    assert err.value.path.name == name and name in str(err.value)


def test_a_file_missing_from_the_manifest_is_rejected(run_dir: Path) -> None:
    manifest = json.loads((run_dir / MANIFEST).read_text())
    del manifest["files"][INTERACTIONS]
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not listed"):
        load_run(run_dir)


def test_a_pickle_is_never_loaded_even_with_a_matching_manifest(run_dir: Path) -> None:
    np.save(run_dir / USERS, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    data = (run_dir / USERS).read_bytes()
    manifest["files"][USERS] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="unreadable") as err:
        load_run(run_dir)
    assert err.value.path.name == USERS


def test_metrics_are_added_under_the_manifest(trained, run_dir: Path) -> None:
    save_metrics(run_dir, {"test": {"sampled": {"hr@10": 0.5}}})
    run = load_run(run_dir)
    assert run.metrics == {"test": {"sampled": {"hr@10": 0.5}}}
    assert METRICS in verify_run(run_dir)["files"]
    (run_dir / METRICS).write_text("{}")
    with pytest.raises(ArtifactError, match="metrics.json: truncated"):
        load_run(run_dir)


def test_adding_metrics_keeps_the_report_and_the_board_and_a_new_run_drops_them(
    trained, tmp_path: Path
) -> None:
    ds, split, result = trained
    out = tmp_path / "run"
    save_run(out, result, ds, split)
    for name in DERIVED:
        (out / name).write_text(f"made from this run: {name}")
    save_metrics(out, {"test": {}})
    assert all((out / n).read_text() == f"made from this run: {n}" for n in DERIVED)
    assert not set(DERIVED) & set(verify_run(out)["files"])  # outside the manifest
    save_run(out, result, ds, split)
    assert not any((out / n).exists() for n in DERIVED)  # they described the old run


def test_saving_over_a_run_replaces_it_and_keeps_the_checkpoints(trained, tmp_path: Path) -> None:
    ds, split, result = trained
    out = tmp_path / "run"
    fit(split, fast_config("neumf", epochs=1), run_dir=out, progress=False)  # leaves a checkpoint
    save_run(out, result, ds, split)
    save_run(out, result, ds, split)
    assert (out / CHECKPOINT).is_file()
    load_run(out)
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(ArtifactError, match="not a movierec run"):
        save_run(stranger, result, ds, split)
    assert (stranger / "cat.jpg").read_bytes() == b"meow"


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such run"):
        load_run(tmp_path / "absent")
    with pytest.raises(ArtifactError, match="missing"):
        load_run(tmp_path)


# ----------------------------------------------------------------------------- replacing a run


@pytest.fixture(scope="module")
def retrained(trained):
    """Another training on the same data (seed 1): the run that replaces the first one."""
    ds, split, _ = trained
    return fit(split, fast_config("neumf", epochs=1, seed=1), progress=False)


def assert_is_run_of(path: Path, result) -> None:
    run = load_run(path)
    assert run.config.seed == result.config.seed
    users = np.arange(run.split.n_users)
    np.testing.assert_allclose(
        run.model.score_all(users), result.scorer().score_all(users), rtol=0, atol=0
    )


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def killed_in(fn, *, when: str, at: int = 1) -> None:
    """Run ``fn`` in a forked child that dies (``os._exit``, no cleanup) at the ``at``-th
    call of ``when``: "rename" (os.rename), "rmtree" (shutil.rmtree), "catalog" (writing
    catalog.parquet) or "manifest" (writing manifest.json)."""
    from movierec.artifacts import manifest, save

    pid = os.fork()
    if pid == 0:  # the child: patch, run, die where told
        calls = {"n": 0}

        def dying(real, match=lambda *a: True):
            def wrapped(*args, **kwargs):
                if match(*args):
                    calls["n"] += 1
                    if calls["n"] == at:
                        os._exit(9)
                return real(*args, **kwargs)

            return wrapped

        try:
            if when == "rename":
                os.rename = dying(os.rename)
            elif when == "rmtree":
                shutil.rmtree = dying(shutil.rmtree)
            elif when == "catalog":
                save._write_catalog = dying(save._write_catalog)
            elif when == "manifest":
                real = manifest.write_json
                manifest.write_json = dying(real, lambda p, _obj: p.name == MANIFEST)
            fn()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 9, "the child was meant to die on the way"


@pytest.mark.parametrize(
    ("when", "at", "expected"),
    [
        ("catalog", 1, "old"),  # writing the new run's files
        ("manifest", 1, "old"),  # every file written but the manifest
        ("rename", 1, "old"),  # the new run complete, nothing swapped yet
        ("rename", 2, "new"),  # the old run moved aside, the new one not yet in place
        ("rmtree", 1, "new"),  # swapped, the backup not yet removed
    ],
)
def test_a_kill_at_any_moment_of_save_run_leaves_a_loadable_run(
    trained, retrained, tmp_path: Path, when: str, at: int, expected: str
) -> None:
    from movierec.artifacts import recover

    ds, split, first = trained
    out = save_run(tmp_path / "run", first, ds, split)
    killed_in(lambda: save_run(out, retrained, ds, split), when=when, at=at)
    assert_is_run_of(out, retrained if expected == "new" else first)  # even before repairs
    recover(out)  # what the next train / evaluate does first
    assert out.is_dir() and leftovers(out) == []
    assert_is_run_of(out, retrained if expected == "new" else first)
    save_metrics(out, {"seed": 0})  # and the run is writable again
    assert load_run(out).metrics == {"seed": 0}


def test_a_kill_between_the_renames_of_save_metrics_is_repaired_by_the_next_writer(
    run_dir: Path,
) -> None:
    killed_in(lambda: save_metrics(run_dir, {"hr": 1.0}), when="rename", at=2)
    assert not run_dir.exists()  # the instant a kill can freeze: the run is at its backup
    assert load_run(run_dir).metrics == {"hr": 1.0}  # read from the complete new run
    save_metrics(run_dir, {"hr": 2.0})  # recovers first, then replaces
    assert load_run(run_dir).metrics == {"hr": 2.0} and leftovers(run_dir) == []


def test_a_failed_swap_puts_the_old_run_back(
    trained, retrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    ds, split, first = trained
    out = save_run(tmp_path / "run", first, ds, split)
    real, calls = os.rename, []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # moving the new run in
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OSError, match="No space"):
        save_run(out, retrained, ds, split)
    monkeypatch.undo()
    assert_is_run_of(out, first)
    assert leftovers(out) == []


def test_training_happens_beside_the_run_and_a_crash_leaves_the_old_run(
    trained, tmp_path: Path
) -> None:
    from movierec.artifacts import begin_run, work_dir

    ds, split, first = trained
    out = save_run(tmp_path / "run", first, ds, split)
    before = sorted(p.name for p in out.iterdir())
    work, notes = begin_run(out)
    assert work == work_dir(out) == tmp_path / ".run.work" and notes == []

    class Crash(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                raise RuntimeError("simulated crash")

    config = fast_config("neumf", epochs=3, seed=1)
    with pytest.raises(RuntimeError, match="simulated"):
        fit(split, config, run_dir=work, progress=False, callbacks=[Crash()])
    assert sorted(p.name for p in out.iterdir()) == before  # the run was never touched
    assert_is_run_of(out, first)
    assert (work / CHECKPOINT).is_file() and (work / TRAIN_LOG).is_file()
    # --resume continues from the work directory, and publishing removes it
    work, notes = begin_run(out, resume=True)
    assert notes == [f"resuming the interrupted training in {work}"]
    resumed = fit(split, config, run_dir=work, resume=True, progress=False)
    save_run(out, resumed, ds, split, work=work)
    assert not work.exists() and leftovers(out) == []
    assert_is_run_of(out, resumed)
    assert (out / CHECKPOINT).is_file()  # the new training's checkpoint, for a later --resume
    # a fresh training removes an interrupted one's files, and says so
    (work / "checkpoints").mkdir(parents=True)
    work2, notes = begin_run(out)
    assert work2 == work and not work.exists() and "removed" in notes[0]


def test_resume_of_a_finished_run_starts_from_its_checkpoint(trained, tmp_path: Path) -> None:
    from movierec.artifacts import begin_run

    ds, split, _ = trained
    out = tmp_path / "run"
    config = fast_config("gmf", epochs=1)
    work, _ = begin_run(out)
    save_run(out, fit(split, config, run_dir=work, progress=False), ds, split, work=work)
    work, notes = begin_run(out, resume=True)
    assert notes == [f"resuming from {out / CHECKPOINT}"]
    longer = fit(split, dataclasses.replace(config, epochs=2), run_dir=work, resume=True)
    assert [h.epoch for h in longer.history] == [1, 2]


def test_leftovers_of_killed_processes_are_removed_and_live_ones_kept(
    run_dir: Path, tmp_path: Path
) -> None:
    from movierec.artifacts import recover

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(gone.stdout)
    dead = tmp_path / f".run.tmp-{dead_pid}-0123abcd"
    live = tmp_path / f".run.tmp-{os.getppid()}-0123abcd"
    other = tmp_path / f".runs.tmp-{dead_pid}-0123abcd"  # another run's
    for d in (dead, live, other):
        d.mkdir()
    notes = recover(run_dir)
    assert not dead.exists() and live.exists() and other.exists()
    assert notes == [f"removed {dead}: left by a killed process"]
    assert load_run(run_dir).path == run_dir
