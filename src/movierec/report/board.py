"""The leaderboard a run keeps beside its model: ``leaderboard.json``.

The main job (``movierec run``) writes the rows it printed; the report reads them back as
``compare.Row`` objects (test and validation figures; the per-user figures behind the
paired intervals are not kept). Shape::

    {"format": "movierec-leaderboard", "version": 1, "dataset": "ml-latest-small",
     "rows": [{"model": "history", **Row.to_dict()}, ...]}   # model by model, seed by seed
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from movierec import atomic
from movierec.artifacts import LEADERBOARD, ArtifactError
from movierec.compare import Row
from movierec.evaluate import Metrics

FORMAT = "movierec-leaderboard"
VERSION = 1


def board_dict(rows: Sequence[Row], dataset: str) -> dict[str, Any]:
    """The JSON object of ``rows``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "dataset": dataset,
        "rows": [{"model": r.model, **r.to_dict()} for r in rows],
    }


def write_board(run_dir: str | Path, rows: Sequence[Row], dataset: str) -> Path:
    """``RUN/leaderboard.json`` (written beside, then renamed over the old one)."""
    path = Path(run_dir) / LEADERBOARD
    atomic.write_text(path, json.dumps(board_dict(rows, dataset), indent=2) + "\n")
    return path


def read_board(run_dir: str | Path) -> list[Row] | None:
    """The rows of ``RUN/leaderboard.json``; None when the run has none; ``ArtifactError``
    when it cannot be read."""
    path = Path(run_dir) / LEADERBOARD
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        board = json.loads(text)
        if board.get("format") != FORMAT or board.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} file")
        return [row_from_dict(d) for d in board["rows"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ArtifactError(path, f"unreadable: {type(e).__name__}: {e}") from None


def row_from_dict(d: dict[str, Any]) -> Row:
    """The inverse of ``{"model": row.model, **row.to_dict()}``, per-user figures aside."""
    return Row(
        model=str(d["model"]),
        seed=int(d["seed"]),
        params=dict(d["params"]),
        train_seconds=float(d["train_seconds"]),
        tune_seconds=float(d["tune_seconds"]),
        validation=metrics_from_dict(d["validation"]),
        test=metrics_from_dict(d),
    )


def metrics_from_dict(d: dict[str, Any]) -> Metrics:
    """The inverse of ``Metrics.to_dict``."""
    full = d.get("full")
    return Metrics(
        sampled={k: float(v) for k, v in d["sampled"].items()},
        full=None if full is None else {k: float(v) for k, v in full.items()},
        coverage_at_10=None if d.get("coverage@10") is None else float(d["coverage@10"]),
    )
