"""What a run directory holds (package docstring): file names, format, its error, ``Run``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from movierec.data import Catalog, IdMap
from movierec.errors import MovierecError
from movierec.models import ModelConfig, TorchScorer
from movierec.split import Split
from movierec.training.config import TrainConfig
from movierec.training.files import CHECKPOINT

FORMAT = "movierec-run"
VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
USERS = "users.npy"
ITEMS = "items.npy"
CATALOG = "catalog.parquet"
INTERACTIONS = "interactions.safetensors"
METRICS = "metrics.json"
REPORT = "report.html"  # the run's report (optional; served at /report)
LEADERBOARD = "leaderboard.json"  # the main job's leaderboard (optional; read by the report)
# Files made from a run after it was saved, outside its manifest: kept when metrics.json is
# added (save_metrics), dropped when the run itself is replaced (they would describe the old one).
DERIVED = (REPORT, LEADERBOARD)
REQUIRED = (CONFIG, WEIGHTS, USERS, ITEMS, CATALOG, INTERACTIONS)
PARTS = ("train", "validation", "test")
CHECKPOINTS = CHECKPOINT.parts[0]  # the directory carried from run to run, not in the manifest


class ArtifactError(MovierecError):
    """A run directory that cannot be trusted or read; ``path`` names the culprit."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: {problem}")


@dataclass
class Run:
    path: Path
    config: TrainConfig
    model_config: ModelConfig
    model: TorchScorer  # the Scorer protocol over the trained weights
    users: IdMap
    items: IdMap
    catalog: Catalog
    split: Split
    data: dict[str, Any]  # data source and prepare options
    training: dict[str, Any]  # best epoch, epochs run, validation figures, seconds
    metrics: dict[str, Any] | None  # metrics.json, when the run was evaluated
