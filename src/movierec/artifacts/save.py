"""Writing a run: ``save_run`` (a trained model with its data), ``save_metrics``, and the
writer of each file."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import safetensors.numpy
import safetensors.torch

from movierec import __version__
from movierec.artifacts.layout import (
    CATALOG,
    CHECKPOINTS,
    CONFIG,
    DERIVED,
    FORMAT,
    INTERACTIONS,
    ITEMS,
    METRICS,
    USERS,
    VERSION,
    WEIGHTS,
)
from movierec.artifacts.manifest import verify, write_json
from movierec.artifacts.swap import check_replaceable, link_or_copy, publish, recover
from movierec.data import Catalog, Dataset
from movierec.split import Split
from movierec.training.files import TRAIN_LOG, write_train_log
from movierec.training.result import TrainResult


def save_run(
    path: str | Path,
    result: TrainResult,
    dataset: Dataset,
    split: Split,
    *,
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    work: Path | None = None,
) -> Path:
    """Write ``result``'s model with ``dataset``'s id maps and catalogue and ``split``.

    ``data``: how the data was obtained (e.g. ``{"source": ..., "prepare": {...}}``), stored
    in config.json. An existing run at ``path`` is replaced whole (package docstring).
    ``work``: the training's working directory (``begin_run``): its ``checkpoints/`` go into
    the new run, then it is removed; without it, the previous run's ``checkpoints/`` are
    kept. A directory that is not a run (nor fit's working files) is never replaced.
    """
    path = Path(path)
    if (len(dataset.users), len(dataset.items)) != (split.n_users, split.n_items):
        raise ValueError("dataset and split index spaces differ")
    if (result.model_config.n_users, result.model_config.n_items) != (
        split.n_users,
        split.n_items,
    ):
        raise ValueError("the model was trained on another index space than split's")
    recover(path)
    check_replaceable(path)
    summary = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "best_val_hr@10": result.best.val_hr10 if result.history else None,
        "best_val_ndcg@10": result.best.val_ndcg10 if result.history else None,
        "device": str(result.device),
        "seconds": round(result.seconds, 3),
    }
    config = {
        "format": FORMAT,
        "version": VERSION,
        "movierec_version": __version__,
        "train": result.config.to_dict(),
        "model": dataclasses.asdict(result.model_config),
        "data": data or {},
        "training": summary,
    }
    state = {k: v.detach().to("cpu").contiguous() for k, v in result.model.state_dict().items()}
    inter = _interactions_arrays(split)
    writers: dict[str, Callable[[Path], None]] = {
        CONFIG: lambda p: write_json(p, config),
        WEIGHTS: lambda p: safetensors.torch.save_file(state, p, metadata={"format": "pt"}),
        USERS: lambda p: np.save(p, dataset.users.raw, allow_pickle=False),
        ITEMS: lambda p: np.save(p, dataset.items.raw, allow_pickle=False),
        CATALOG: lambda p: _write_catalog(p, dataset.catalog),
        INTERACTIONS: lambda p: safetensors.numpy.save_file(inter, p),
        TRAIN_LOG: lambda p: write_train_log(p, result.history),
    }
    if metrics is not None:
        writers[METRICS] = lambda p: write_json(p, metrics)
    publish(path, writers, carry=(work if work is not None else path) / CHECKPOINTS)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return path


def save_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Add or replace metrics.json in a verified run (same swap as save_run)."""
    path = Path(path)
    recover(path)
    manifest = verify(path)
    writers: dict[str, Callable[[Path], None]] = {
        name: (lambda p, src=path / name: link_or_copy(src, p))
        for name in manifest["files"]
        if name != METRICS
    }
    writers[METRICS] = lambda p: write_json(p, metrics)
    publish(path, writers, carry=path / CHECKPOINTS, keep=[path / n for n in DERIVED])


def _interactions_arrays(split: Split) -> dict[str, np.ndarray]:
    parts = (split.train, split.validation, split.test)
    return {
        "users": np.concatenate([p.users for p in parts]).astype(np.int32),
        "items": np.concatenate([p.items for p in parts]).astype(np.int32),
        "timestamps": np.concatenate([p.timestamps for p in parts]).astype(np.int64),
        "ratings": np.concatenate([p.ratings for p in parts]).astype(np.float32),
        "part": np.concatenate([np.full(len(p), i, np.uint8) for i, p in enumerate(parts)]),
        "shape": np.array([split.n_users, split.n_items], dtype=np.int64),
    }


def _write_catalog(path: Path, c: Catalog) -> None:
    table = pa.table(
        {
            "movie_id": pa.array(c.movie_ids, pa.int64()),
            "title": pa.array([str(t) for t in c.titles], pa.string()),
            "year": pa.array(c.years, pa.int16()),
            "genres": pa.array([str(g) for g in c.genres], pa.string()),
            "imdb_id": pa.array(c.imdb_ids, pa.int64()),
            "tmdb_id": pa.array(c.tmdb_ids, pa.int64()),
        }
    )
    pq.write_table(table, path)
