"""Every command reports a user's error the same way: one line `error: <message>` on stderr,
exit status 2, no traceback; a bug (any other exception) is not disguised as one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from _train_fixtures import fast_config, planted_dataset
from test_train import planted_release
from typer.testing import CliRunner, Result

from movierec import service
from movierec.artifacts import WEIGHTS, ArtifactError, save_run
from movierec.cli import TRACEBACK_ENV, app
from movierec.errors import MovierecError
from movierec.split import leave_last_out
from movierec.train import CHECKPOINT, fit

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    ds = planted_dataset()
    split = leave_last_out(ds.interactions)
    result = fit(split, fast_config("gmf", epochs=1), progress=False)
    return save_run(tmp_path_factory.mktemp("good") / "run", result, ds, split)


@pytest.fixture
def damaged_run(good_run: Path, tmp_path: Path) -> Path:
    run = shutil.copytree(good_run, tmp_path / "run")
    weights = run / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    return run


def one_error_line(result: Result) -> str:
    """The stderr line of a reported error: the last one, and the only one saying error
    (a command may have printed progress before), after checking exit 2, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    assert errors == lines[-1:] and lines[-1].startswith("error: "), result.stderr
    return lines[-1]


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["recommend", "--user", "1000"],
        ["recommend", "--liked", "Movie 1"],
        ["similar", "--movie", "11"],
        ["evaluate"],
        ["report"],
        ["batch", "--out", "recs.sqlite", "--no-progress"],
    ],
)
def test_a_damaged_run_is_one_line_for_every_command(damaged_run: Path, command) -> None:
    line = one_error_line(runner.invoke(app, [command[0], str(damaged_run), *command[1:]]))
    assert f"{WEIGHTS}: truncated or extended" in line


def test_serve_reports_the_services_own_errors(
    monkeypatch: pytest.MonkeyPatch, good_run: Path
) -> None:
    def refuse(run, store, **options):  # e.g. the check serve runs before starting workers
        raise ArtifactError(Path(run) / WEIGHTS, "truncated or extended: 10 bytes")

    monkeypatch.setattr(service, "serve", refuse)
    line = one_error_line(runner.invoke(app, ["serve", str(good_run), "--workers", "4"]))
    assert line == f"error: {good_run / WEIGHTS}: truncated or extended: 10 bytes"

    def unreadable(run, store, **options):
        raise PermissionError(13, "Permission denied", "recs.sqlite")

    monkeypatch.setattr(service, "serve", unreadable)
    line = one_error_line(runner.invoke(app, ["serve", str(good_run), "--store", "recs.sqlite"]))
    assert "Permission denied" in line and "recs.sqlite" in line


def test_bad_requests_to_a_good_run_are_one_line(good_run: Path) -> None:
    run = str(good_run)
    line = one_error_line(runner.invoke(app, ["recommend", run]))
    assert "give either --user ID or at least one --liked MOVIE" in line
    line = one_error_line(runner.invoke(app, ["recommend", run, "--user", "5"]))
    assert "--user 5 is not in this run" in line
    bad = runner.invoke(app, ["recommend", run, "--liked", "No Such Film", "--liked", "Nope"])
    line = one_error_line(bad)
    assert "'No Such Film'" in line and "'Nope'" in line
    line = one_error_line(runner.invoke(app, ["batch", run, "--out", "x", "--devices", "0"]))
    assert "--devices must be at least 1" in line


def test_train_with_bad_input_is_one_line(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    base = ["train", "--out", out, "--device", "cpu", "--no-progress"]
    line = one_error_line(runner.invoke(app, [*base, "--epochs", "0"]))
    assert "TrainConfig.epochs is out of range: 0" in line
    line = one_error_line(runner.invoke(app, [*base, "--model", "svd"]))
    assert "unknown model 'svd'" in line
    line = one_error_line(runner.invoke(app, [*base, "--device", "gpu9"]))
    assert "unknown device 'gpu9'" in line
    line = one_error_line(runner.invoke(app, [*base, "--data", str(tmp_path / "nowhere")]))
    assert "nowhere" in line
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_bytes(b"meow")
    line = one_error_line(runner.invoke(app, ["train", "--out", str(stranger), "--epochs", "1"]))
    assert "not a movierec run directory" in line


def test_train_resume_from_a_damaged_checkpoint_is_one_line(tmp_path: Path) -> None:
    data, out = planted_release(tmp_path / "data"), tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--model", "gmf", "--epochs", "1"]
    args += ["--device", "cpu", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    ckpt = out / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    line = one_error_line(runner.invoke(app, [*args, "--epochs", "2", "--resume"]))
    assert "last.ckpt: damaged" in line and "without --resume" in line


def test_compare_with_unknown_models_is_one_line() -> None:
    line = one_error_line(runner.invoke(app, ["compare", "--models", "popularity,nosuch"]))
    assert "unknown model(s) nosuch" in line


def test_a_bug_is_not_disguised_as_a_users_error(
    monkeypatch: pytest.MonkeyPatch, good_run: Path
) -> None:
    import movierec.evaluate

    def buggy(*args, **kwargs):
        raise ValueError("an index went wrong")

    monkeypatch.setattr(movierec.evaluate, "evaluate", buggy)
    result = runner.invoke(app, ["evaluate", str(good_run)])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)
    assert "error:" not in result.stderr


def test_the_traceback_of_a_reported_error_on_request(
    monkeypatch: pytest.MonkeyPatch, damaged_run: Path
) -> None:
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    result = runner.invoke(app, ["evaluate", str(damaged_run)])
    assert result.exit_code == 1 and isinstance(result.exception, ArtifactError)


def test_the_projects_errors_share_one_base_class() -> None:
    from movierec import movielens
    from movierec.checkpoint import ResumeError
    from movierec.errors import ParameterError

    for cls in (ArtifactError, ResumeError, ParameterError, movielens.DataError):
        assert issubclass(cls, MovierecError)
