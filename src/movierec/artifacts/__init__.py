"""The run directory: everything needed to serve and evaluate a trained model, verified.

Layout (every file but ``manifest.json`` and ``checkpoints/`` is listed in the manifest)::

    RUN/
      manifest.json             format, version, sha256 + size of every file below
      config.json               TrainConfig, ModelConfig, data source + prepare options,
                                training summary
      model.safetensors         model weights (state_dict, float32)
      users.npy  items.npy      IdMap.raw: raw MovieLens ids of user / item index i (int64)
      catalog.parquet           movie_id, title, year, genres, imdb_id, tmdb_id (-1: unknown;
                                absent in older runs), aligned with the item index
      interactions.safetensors  users, items (int32), timestamps (int64), ratings (float32),
                                part (uint8: 0 train, 1 validation, 2 test), split order kept
      train_log.csv             one row per training epoch
      metrics.json              evaluation results (optional, written by save_metrics)
      report.html               the run's report (optional; ``movierec serve`` shows it at /report)
      checkpoints/last.ckpt     training state for --resume (not part of the artifact),
      checkpoints/last.ckpt.sha256   and its digest (movierec.checkpoint)

Beside ``RUN`` (hidden siblings in the same directory, so that renames stay on one file
system)::

    .RUN.work/               training in progress (``begin_run``): checkpoints/, train_log.csv;
                             what --resume continues; removed once the run is published
    .RUN.tmp-PID-HEX/        a new run being written (``swap.publish``)
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

Modules, in the order they depend on each other:

- ``layout``: the file names, ``FORMAT`` / ``VERSION``, ``ArtifactError``, ``Run``;
- ``manifest``: describing files, writing the manifest, checking a directory against it;
- ``swap``: the work directory, ``begin_run``, ``recover``, ``check_replaceable`` and the
  publish / carry mechanism that replaces a run whole;
- ``save``: ``save_run``, ``save_metrics`` and the writers of each file;
- ``load``: ``verify_run``, ``load_run`` and the readers of each file.

None of them imports Lightning or the training loop.
"""

from __future__ import annotations

from movierec.artifacts.layout import (
    CATALOG,
    CHECKPOINTS,
    CONFIG,
    DERIVED,
    FORMAT,
    INTERACTIONS,
    ITEMS,
    LEADERBOARD,
    MANIFEST,
    METRICS,
    PARTS,
    REPORT,
    REQUIRED,
    USERS,
    VERSION,
    WEIGHTS,
    ArtifactError,
    Run,
)
from movierec.artifacts.load import load_run, verify_run
from movierec.artifacts.save import save_metrics, save_run
from movierec.artifacts.swap import begin_run, check_replaceable, recover, work_dir

__all__ = [
    "CATALOG",
    "CHECKPOINTS",
    "CONFIG",
    "FORMAT",
    "INTERACTIONS",
    "ITEMS",
    "MANIFEST",
    "METRICS",
    "PARTS",
    "DERIVED",
    "LEADERBOARD",
    "REPORT",
    "REQUIRED",
    "USERS",
    "VERSION",
    "WEIGHTS",
    "ArtifactError",
    "Run",
    "begin_run",
    "check_replaceable",
    "load_run",
    "recover",
    "save_metrics",
    "save_run",
    "verify_run",
    "work_dir",
]
