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
      checkpoints/last.ckpt     training state for --resume (not part of the artifact),
      checkpoints/last.ckpt.sha256   and its digest (movierec.checkpoint)

Beside ``RUN`` (hidden siblings in the same directory, so that renames stay on one file
system)::

    .RUN.work/               training in progress (``begin_run``): checkpoints/, train_log.csv;
                             what --resume continues; removed once the run is published
    .RUN.tmp-PID-HEX/        a new run being written (``_publish``)
    .RUN.old-PID-HEX/        the previous run, for the instant between two renames

A new run never touches ``RUN`` until it is complete: ``fit`` trains in ``.RUN.work``, and
``save_run`` / ``save_metrics`` write ``.RUN.tmp-*``, then swap it in by renaming ``RUN`` to
``.RUN.old-*`` and ``.RUN.tmp-*`` to ``RUN`` (POSIX cannot rename a directory over a
non-empty one), then delete the backup. A process killed at any moment therefore leaves
either ``RUN`` whole, or no ``RUN`` but its backup (and possibly the complete new run):
``load_run`` reads from the new run or the backup then, and the next writer (``recover``,
called by ``begin_run``, ``save_run`` and ``save_metrics``) renames one of them back into
place and removes the leftovers of processes that are no longer running.

``load_run`` checks the manifest before reading anything: a missing, truncated or altered
file raises ``ArtifactError`` naming it. Nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import safetensors.numpy
import safetensors.torch

from movierec import __version__, atomic
from movierec.checkpoint import file_sha256
from movierec.data import Catalog, Dataset, IdMap, Interactions
from movierec.errors import MovierecError
from movierec.models import ModelConfig, TorchScorer, build_model
from movierec.split import Split
from movierec.training.config import TrainConfig
from movierec.training.files import CHECKPOINT, TRAIN_LOG, write_train_log
from movierec.training.result import TrainResult
from movierec.training.runtime import resolve_device

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
CHECKPOINTS = CHECKPOINT.parts[0]  # the directory carried from run to run, not in the manifest
_WORK_FILES = {CHECKPOINTS, TRAIN_LOG}  # what fit() left in a run_dir before work dirs existed


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


# ----------------------------------------------------------------------------- save


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
    in config.json. An existing run at ``path`` is replaced whole (module docstring). ``work``:
    the training's working directory (``begin_run``): its ``checkpoints/`` go into the new
    run, then it is removed; without it, the previous run's ``checkpoints/`` are kept. A
    directory that is not a run (nor fit's working files) is never replaced.
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
    _publish(path, writers, carry=(work if work is not None else path) / CHECKPOINTS)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return path


def save_metrics(path: str | Path, metrics: dict[str, Any]) -> None:
    """Add or replace metrics.json in a verified run (same swap as save_run)."""
    path = Path(path)
    recover(path)
    manifest = _verify(path)
    writers: dict[str, Callable[[Path], None]] = {
        name: (lambda p, src=path / name: _link_or_copy(src, p))
        for name in manifest["files"]
        if name != METRICS
    }
    writers[METRICS] = lambda p: _write_json(p, metrics)
    _publish(path, writers, carry=path / CHECKPOINTS)


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


# ----------------------------------------------------------------------------- replace


def work_dir(path: str | Path) -> Path:
    """Where a training that will become the run ``path`` keeps its working files."""
    path = Path(path)
    return path.parent / f".{path.name}.work"


def begin_run(
    path: str | Path, *, resume: bool = False, main: bool = True
) -> tuple[Path, list[str]]:
    """Prepare to train the run ``path``: ``(work directory for fit's run_dir, notes)``.

    Repairs an interrupted replacement of ``path`` first (``recover``) and refuses a
    ``path`` that is not a run. A fresh training removes the work directory (an interrupted
    training's files); ``resume`` keeps it, or, when it has no checkpoint, starts from the
    checkpoint of the run at ``path`` (a finished run trained further). The notes are
    one-line sentences for the user. ``main``: False on DDP ranks other than 0, which
    only get the path.
    """
    path = Path(path)
    work = work_dir(path)
    if not main:
        return work, []
    notes = recover(path)
    check_replaceable(path)
    if not resume and work.exists():
        shutil.rmtree(work)
        notes.append(f"removed {work}: an interrupted training's files (--resume continues one)")
    if resume:
        if (work / CHECKPOINT).is_file():
            notes.append(f"resuming the interrupted training in {work}")
        elif (path / CHECKPOINT).is_file():
            _carry(path / CHECKPOINTS, work / CHECKPOINTS)
            notes.append(f"resuming from {path / CHECKPOINT}")
        else:
            notes.append(f"nothing to resume in {work} or {path}: training from the start")
    return work, notes  # fit creates it with its first file


def recover(path: str | Path) -> list[str]:
    """Finish what a killed ``_publish`` of ``path`` left: when ``path`` is missing, rename
    the complete new run (or else the backup of the old one) back into place; remove the
    temporary directories of processes that are no longer running. Returns what it did,
    one sentence each."""
    path = Path(path)
    notes: list[str] = []
    dead = [p for p in atomic.siblings(path) if p.is_dir() and atomic.stale(p)]
    if not path.exists():
        for where in _candidates(path, dead):
            if _complete(where):
                os.rename(where, path)
                atomic.fsync(path.parent)
                notes.append(f"restored {path} from {where.name} (an interrupted replacement)")
                break
    for p in dead:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
            notes.append(f"removed {p}: left by a killed process")
    return notes


def _candidates(path: Path, sides: list[Path]) -> list[Path]:
    """Where the run ``path`` is while ``path`` itself is missing: for each backup (newest
    first), the new run written by the same process, then the backup itself."""
    out = []
    for old in (p for p in sides if atomic.SIDE.fullmatch(p.name)["kind"] == "old"):
        new = old.with_name(old.name.replace(".old-", ".tmp-", 1))
        out += [p for p in (new, old) if p in sides]
    return out


def _complete(where: Path) -> bool:
    try:
        _verify(where)
    except ArtifactError:
        return False
    return True


def _publish(path: Path, writers: dict[str, Callable[[Path], None]], carry: Path) -> Path:
    """Write every file into a temporary sibling, add the manifest and the ``carry``
    directory's files (linked), swap it in (module docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = atomic.tag()
    tmp = atomic.beside(path, "tmp", tag)
    tmp.mkdir()
    try:
        files = {}
        for name, write in writers.items():
            write(tmp / name)
            files[name] = _describe(tmp / name)
        manifest = {"format": FORMAT, "version": VERSION, "files": files}
        _write_json(tmp / MANIFEST, manifest)
        for f in tmp.iterdir():
            atomic.fsync(f)
        atomic.fsync(tmp)
        _carry(carry, tmp / carry.name)
        if path.exists():
            old = atomic.beside(path, "old", tag)
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            atomic.fsync(path.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
            atomic.fsync(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _carry(src: Path, dst: Path) -> None:
    """Link (or copy) the finished files of directory ``src`` into ``dst``."""
    if not src.is_dir():
        return
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not atomic.SIDE.fullmatch(f.name):  # not a file being written
            _link_or_copy(f, dst / f.name)


def _describe(path: Path) -> dict[str, Any]:
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


# ----------------------------------------------------------------------------- load


def verify_run(path: str | Path) -> dict[str, Any]:
    """The manifest of a run whose every listed file is present and unaltered."""
    return _settled(Path(path), _verify)


def load_run(path: str | Path, *, device: str | None = None) -> Run:
    """Verify the manifest, then read the run; the model goes to ``device`` (see
    ``training.runtime.resolve_device``). While ``path`` is being replaced (or a replacement
    was killed), the run is read from where it is (module docstring); ``Run.path`` says
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
            for p in _candidates(path, [p for p in atomic.siblings(path) if p.is_dir()])
        ]
    except FileNotFoundError:  # a directory vanished while looking: a replacement is under way
        return [(path, -1)]
    return places or [(path, 0)]


def _load(path: Path, device: str | None) -> Run:
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
        if file_sha256(p) != want.get("sha256"):
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
