"""Reading a run: ``verify_run``, ``load_run`` (from wherever the run is while it is being
replaced), and the reader of each file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import safetensors.numpy
import safetensors.torch

from movierec import atomic
from movierec.artifacts.layout import (
    CATALOG,
    CONFIG,
    INTERACTIONS,
    ITEMS,
    METRICS,
    PARTS,
    USERS,
    WEIGHTS,
    ArtifactError,
    Run,
)
from movierec.artifacts.manifest import verify
from movierec.artifacts.swap import candidates
from movierec.data import Catalog, IdMap, Interactions
from movierec.models import ModelConfig, TorchScorer, build_model
from movierec.split import Split
from movierec.training.config import TrainConfig
from movierec.training.runtime import resolve_device


def verify_run(path: str | Path) -> dict[str, Any]:
    """The manifest of a run whose every listed file is present and unaltered."""
    return _settled(Path(path), verify)


def load_run(path: str | Path, *, device: str | None = None) -> Run:
    """Verify the manifest, then read the run; the model goes to ``device`` (see
    ``training.runtime.resolve_device``). While ``path`` is being replaced (or a replacement
    was killed), the run is read from where it is (package docstring); ``Run.path`` says
    where."""
    return _settled(Path(path), lambda where: _load(where, device))


def _settled(path: Path, read: Callable[[Path], Any]) -> Any:
    """``read(where)`` for where the run ``path`` is now; again when a failure coincides
    with a replacement of ``path`` (a file read from the old run, the next from the new)."""
    errors: list[ArtifactError] = []
    for _ in range(3):
        places, errors = _places(path), []
        for where, _ino in places:
            try:
                return read(where)
            except ArtifactError as e:
                errors.append(e)
        if _places(path) == places:
            break  # nothing moved meanwhile: the failure is the run's
    raise errors[0]


def _places(path: Path) -> list[tuple[Path, int]]:
    """(directory, inode) to read the run ``path`` from, in order of preference; never empty."""
    try:
        if path.exists():
            return [(path, path.stat().st_ino)]
        places = [
            (p, p.stat().st_ino)
            for p in candidates(path, [p for p in atomic.siblings(path) if p.is_dir()])
        ]
    except FileNotFoundError:  # a directory vanished while looking: a replacement is under way
        return [(path, -1)]
    return places or [(path, 0)]


def _load(path: Path, device: str | None) -> Run:
    manifest = verify(path)
    cfg = _read(path / CONFIG, lambda p: json.loads(p.read_text()))
    try:
        train_config = TrainConfig.from_dict(cfg["train"])
        model_config = ModelConfig(**{**cfg["model"], "layers": tuple(cfg["model"]["layers"])})
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(path / CONFIG, f"invalid configuration: {e}") from None
    users = _read(path / USERS, lambda p: IdMap(np.load(p, allow_pickle=False)))
    items = _read(path / ITEMS, lambda p: IdMap(np.load(p, allow_pickle=False)))
    catalog = _read(path / CATALOG, _read_catalog)
    split = _read(path / INTERACTIONS, _read_split)
    if (len(users), len(items)) != (split.n_users, split.n_items):
        raise ArtifactError(path / INTERACTIONS, "index spaces do not match users.npy/items.npy")
    if (model_config.n_users, model_config.n_items) != (split.n_users, split.n_items):
        raise ArtifactError(path / CONFIG, "model index spaces do not match the interactions")
    if len(catalog) != len(items) or not np.array_equal(catalog.movie_ids, items.raw):
        raise ArtifactError(path / CATALOG, "not aligned with items.npy")
    model = build_model(model_config)
    state = _read(path / WEIGHTS, safetensors.torch.load_file)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(path / WEIGHTS, f"does not fit the configured model: {e}") from None
    metrics = None
    if METRICS in manifest["files"]:
        metrics = _read(path / METRICS, lambda p: json.loads(p.read_text()))
    return Run(
        path=path,
        config=train_config,
        model_config=model_config,
        model=TorchScorer(model, resolve_device(device)),
        users=users,
        items=items,
        catalog=catalog,
        split=split,
        data=cfg.get("data", {}),
        training=cfg.get("training", {}),
        metrics=metrics,
    )


def _read(path: Path, reader: Callable[[Path], Any]) -> Any:
    try:
        return reader(path)
    except ArtifactError:
        raise
    except Exception as e:  # any parse failure of a file that passed the manifest check
        raise ArtifactError(path, f"unreadable: {type(e).__name__}: {e}") from None


def _read_catalog(path: Path) -> Catalog:
    """catalog.parquet; runs written before the link columns existed have every id unknown."""
    t = pq.read_table(path)
    links = {
        name: t.column(name).to_numpy().astype(np.int64) if name in t.column_names else None
        for name in ("imdb_id", "tmdb_id")
    }
    return Catalog(
        movie_ids=t.column("movie_id").to_numpy().astype(np.int64),
        titles=np.array(t.column("title").to_pylist(), dtype=object),
        years=t.column("year").to_numpy().astype(np.int16),
        genres=np.array(t.column("genres").to_pylist(), dtype=object),
        imdb_ids=links["imdb_id"],
        tmdb_ids=links["tmdb_id"],
    )


def _read_split(path: Path) -> Split:
    a = safetensors.numpy.load_file(path)
    n_users, n_items = (int(x) for x in a["shape"])
    whole = Interactions(a["users"], a["items"], a["timestamps"], a["ratings"], n_users, n_items)
    part = a["part"]
    if len(part) != len(whole) or (part.size and part.max() > 2):
        raise ValueError("the part column does not match the interactions")
    return Split(*(whole.subset(part == i) for i in range(len(PARTS))))
