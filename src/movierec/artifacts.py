"""The run directory: everything needed to serve and evaluate a trained model, verified.

Layout (every file but ``manifest.json`` and ``checkpoints/`` is listed in the manifest)::

    RUN/
      manifest.json             format, version, sha256 + size of every file below
      config.json               TrainConfig, ModelConfig, data source + prepare options,
                                training summary
      model.safetensors         model weights (state_dict, float32)
      users.npy  items.npy      IdMap.raw: raw MovieLens ids of user / item index i (int64)
      catalog.parquet           movie_id, title, year, genres, aligned with the item index
      interactions.safetensors  users, items (int32), timestamps (int64), ratings (float32),
                                part (uint8: 0 train, 1 validation, 2 test), split order kept
      train_log.csv             one row per training epoch
      metrics.json              evaluation results (optional, written by save_metrics)
      checkpoints/last.ckpt     training state for --resume (not part of the artifact)

``save_run`` writes a sibling temporary directory and swaps it in with renames, carrying over
``checkpoints/``. ``load_run`` checks the manifest before reading anything: a missing,
truncated or altered file raises ``ArtifactError`` naming it. Nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import safetensors.numpy
import safetensors.torch

from movierec import __version__
from movierec.data import Catalog, Dataset, IdMap, Interactions
from movierec.models import ModelConfig, TorchScorer, build_model
from movierec.split import Split
from movierec.train import (
    CHECKPOINT,
    TRAIN_LOG,
    TrainConfig,
    TrainResult,
    resolve_device,
    write_train_log,
)

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
REQUIRED = (CONFIG, WEIGHTS, USERS, ITEMS, CATALOG, INTERACTIONS)
PARTS = ("train", "validation", "test")
_WORK_FILES = {CHECKPOINT.parts[0], TRAIN_LOG}  # what fit() leaves in a run_dir


class ArtifactError(Exception):
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


# ----------------------------------------------------------------------------- save


def save_run(
    path: str | Path,
    result: TrainResult,
    dataset: Dataset,
    split: Split,
    *,
    data: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write ``result``'s model with ``dataset``'s id maps and catalogue and ``split``.

    ``data``: how the data was obtained (e.g. ``{"source": ..., "prepare": {...}}``), stored
    in config.json. An existing run at ``path`` is replaced whole; its ``checkpoints/``
    is kept. A directory that is not a run (nor fit's working files) is never replaced.
    """
    path = Path(path)
    if (len(dataset.users), len(dataset.items)) != (split.n_users, split.n_items):
        raise ValueError("dataset and split index spaces differ")
    if (result.model_config.n_users, result.model_config.n_items) != (
        split.n_users,
        split.n_items,
    ):
        raise ValueError("the model was trained on another index space than split's")
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
        CONFIG: lambda p: _write_json(p, config),
        WEIGHTS: lambda p: safetensors.torch.save_file(state, p, metadata={"format": "pt"}),
        USERS: lambda p: np.save(p, dataset.users.raw, allow_pickle=False),
        ITEMS: lambda p: np.save(p, dataset.items.raw, allow_pickle=False),
        CATALOG: lambda p: _write_catalog(p, dataset.catalog),
        INTERACTIONS: lambda p: safetensors.numpy.save_file(inter, p),
        TRAIN_LOG: lambda p: write_train_log(p, result.history),
    }
    if metrics is not None:
        writers[METRICS] = lambda p: _write_json(p, metrics)
    return _publish(path, writers, keep_from_old=CHECKPOINT.parts[0])


def save_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Add or replace metrics.json in a verified run (same swap as save_run)."""
    path = Path(path)
    manifest = _verify(path)
    writers: dict[str, Callable[[Path], None]] = {
        name: (lambda p, src=path / name: _link_or_copy(src, p))
        for name in manifest["files"]
        if name != METRICS
    }
    writers[METRICS] = lambda p: _write_json(p, metrics)
    _publish(path, writers, keep_from_old=CHECKPOINT.parts[0])


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


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, allow_nan=True) + "\n")


def _write_catalog(path: Path, c: Catalog) -> None:
    table = pa.table(
        {
            "movie_id": pa.array(c.movie_ids, pa.int64()),
            "title": pa.array([str(t) for t in c.titles], pa.string()),
            "year": pa.array(c.years, pa.int16()),
            "genres": pa.array([str(g) for g in c.genres], pa.string()),
        }
    )
    pq.write_table(table, path)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def check_replaceable(path: str | Path) -> None:
    """Raise ArtifactError unless ``path`` is absent, empty, a run, or fit's working files."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise ArtifactError(path, "exists and is not a directory")
    names = {p.name for p in path.iterdir()}
    if names and MANIFEST not in names and not names <= _WORK_FILES:
        raise ArtifactError(path, "exists and is not a movierec run directory; not replacing it")


def _publish(path: Path, writers: dict[str, Callable[[Path], None]], keep_from_old: str) -> Path:
    """Write every file into a temporary sibling, add the manifest, swap it in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = path.parent / f".{path.name}.tmp-{tag}"
    tmp.mkdir()
    try:
        files = {}
        for name, write in writers.items():
            write(tmp / name)
            files[name] = _describe(tmp / name)
        manifest = {"format": FORMAT, "version": VERSION, "files": files}
        _write_json(tmp / MANIFEST, manifest)
        _fsync_dir(tmp)
        if path.exists():
            if (path / keep_from_old).exists():
                os.rename(path / keep_from_old, tmp / keep_from_old)
            old = path.parent / f".{path.name}.old-{tag}"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _describe(path: Path) -> dict[str, Any]:
    return {"sha256": _sha256(path), "bytes": path.stat().st_size}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    for p in path.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


# ----------------------------------------------------------------------------- load


def verify_run(path: str | Path) -> dict[str, Any]:
    """The manifest of a run whose every listed file is present and unaltered."""
    return _verify(Path(path))


def load_run(path: str | Path, *, device: str | None = None) -> Run:
    """Verify the manifest, then read the run; the model goes to ``device`` (see
    ``train.resolve_device``)."""
    path = Path(path)
    manifest = _verify(path)
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


def _verify(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST
    if not path.is_dir():
        raise ArtifactError(path, "no such run directory")
    if not mpath.is_file():
        raise ArtifactError(mpath, "missing: not a movierec run directory, or an incomplete one")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
        ok = manifest.get("format") == FORMAT and isinstance(files, dict)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise ArtifactError(mpath, f"unreadable: {e}") from None
    if not ok:
        raise ArtifactError(mpath, f"not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise ArtifactError(mpath, f"version {manifest.get('version')!r}; expected {VERSION}")
    for name in REQUIRED:
        if name not in files:
            raise ArtifactError(path / name, "not listed in the manifest")
    for name, want in files.items():
        p = path / name
        if Path(name).name != name or name == MANIFEST:
            raise ArtifactError(mpath, f"invalid file name {name!r}")
        if not p.is_file():
            raise ArtifactError(p, "missing")
        size = p.stat().st_size
        if size != want.get("bytes"):
            expected = want.get("bytes")
            raise ArtifactError(p, f"truncated or extended: {size} bytes, manifest says {expected}")
        if _sha256(p) != want.get("sha256"):
            raise ArtifactError(p, "altered: its sha256 does not match the manifest")
    return manifest


def _read(path: Path, reader: Callable[[Path], Any]) -> Any:
    try:
        return reader(path)
    except ArtifactError:
        raise
    except Exception as e:  # any parse failure of a file that passed the manifest check
        raise ArtifactError(path, f"unreadable: {type(e).__name__}: {e}") from None


def _read_catalog(path: Path) -> Catalog:
    t = pq.read_table(path)
    return Catalog(
        movie_ids=t.column("movie_id").to_numpy().astype(np.int64),
        titles=np.array(t.column("title").to_pylist(), dtype=object),
        years=t.column("year").to_numpy().astype(np.int16),
        genres=np.array(t.column("genres").to_pylist(), dtype=object),
    )


def _read_split(path: Path) -> Split:
    a = safetensors.numpy.load_file(path)
    n_users, n_items = (int(x) for x in a["shape"])
    whole = Interactions(a["users"], a["items"], a["timestamps"], a["ratings"], n_users, n_items)
    part = a["part"]
    if len(part) != len(whole) or (part.size and part.max() > 2):
        raise ValueError("the part column does not match the interactions")
    return Split(*(whole.subset(part == i) for i in range(len(PARTS))))
