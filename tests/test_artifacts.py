"""Run directory: save -> load gives the same model and data; damage is named, never trusted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_fixtures import fast_config, planted_dataset

from movierec.artifacts import (
    CATALOG,
    CONFIG,
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
