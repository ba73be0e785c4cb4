"""What `movierec --help` says about the models, and defaults that agree."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from movierec.cli import app
from movierec.cli.group import DEFAULT_MODEL, MODEL_LINES
from movierec.training.config import PRESETS


def test_help_lists_every_model_with_one_line() -> None:
    assert set(MODEL_LINES) == set(PRESETS)
    out = CliRunner().invoke(app, ["--help"], terminal_width=80)
    assert out.exit_code == 0, out.output
    for name in PRESETS:
        [line] = [ln for ln in out.output.splitlines() if ln.strip().startswith(f"{name}:")]
        assert len(line.rstrip()) <= 80 and MODEL_LINES[name] in line


def test_train_and_run_default_to_the_same_model() -> None:
    commands = typer.main.get_command(app).commands
    default = {c: [p.default for p in commands[c].params if p.name == "model"] for c in commands}
    assert default["train"] == default["run"] == [DEFAULT_MODEL]
    assert DEFAULT_MODEL in PRESETS
