"""The training's files in its run directory: the per-epoch log and the checkpoint to resume.

``run_dir`` while training: ``checkpoints/last.ckpt`` (Lightning checkpoint after every
epoch: weights, optimizer, loop state, best weights, the epoch log and the fingerprint of
the data; loads with ``torch.load(weights_only=True)``), its digest ``last.ckpt.sha256``
(``movierec.checkpoint``) and ``train_log.csv`` (one row per epoch). The command line
trains in ``artifacts.work_dir(out)`` beside the run it replaces, never in it. A resume
verifies the checkpoint's digest, data and settings first (``ResumeError``). Only global
rank 0 writes them; a resume needs the run directory on a file system every node sees.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movierec import atomic
from movierec import checkpoint as checkpoint_state
from movierec.checkpoint import ResumeError
from movierec.training.config import RESUMABLE_CHANGES, TrainConfig

if TYPE_CHECKING:
    import lightning as L

CHECKPOINT = Path("checkpoints") / "last.ckpt"
TRAIN_LOG = "train_log.csv"


@dataclass
class EpochLog:
    epoch: int  # 1-based
    loss: float  # mean training loss over the epoch's batches (the model's example_losses)
    val_hr10: float  # sampled validation HR@10 (nan when there is no validation part)
    val_ndcg10: float
    rows_per_s: float  # training rows (positives + negatives) per second, sampling excluded
    seconds: float  # whole epoch: sampling, training and validation

    CSV_HEADER = ("epoch", "loss", "val_hr@10", "val_ndcg@10", "rows/s", "seconds")

    def csv_row(self) -> list[str]:
        return [
            str(self.epoch),
            f"{self.loss:.6f}",
            f"{self.val_hr10:.6f}",
            f"{self.val_ndcg10:.6f}",
            f"{self.rows_per_s:.0f}",
            f"{self.seconds:.3f}",
        ]


def write_train_log(path: Path, history: Sequence[EpochLog]) -> None:
    with atomic.replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EpochLog.CSV_HEADER)
        w.writerows(h.csv_row() for h in history)


def check_resumable(saved: dict[str, Any], config: TrainConfig, where: Path | str = "") -> None:
    """Raise ResumeError when ``config`` differs from the checkpoint's settings ``saved``
    other than in ``RESUMABLE_CHANGES``."""
    now = config.to_dict()
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ResumeError(
            f"{where or 'cannot resume'}: the checkpoint was trained with other settings "
            f"({diffs}); give the same settings, or {checkpoint_state.AFRESH}"
        )


def resume_checkpoint(
    run_dir: Path | None, config: TrainConfig, fingerprint: str | None
) -> dict[str, Any] | None:
    """The verified checkpoint in ``run_dir`` to resume ``config`` from, None when there is
    none; ResumeError when it is damaged or belongs to other data or settings."""
    path = run_dir / CHECKPOINT if run_dir is not None else None
    if path is None or fingerprint is None or not path.exists():
        return None
    saved = checkpoint_state.read(path, fingerprint)
    if "state_dict" not in saved:  # the history model's own loop wrote plain dicts
        raise ResumeError(
            f"{path}: written by an older movierec's history training loop, which the one "
            f"training loop cannot continue; {checkpoint_state.AFRESH}"
        )
    check_resumable(saved[checkpoint_state.STATE]["config"], config, path)
    return saved


def remove_work_files(run_dir: Path) -> None:
    """Remove a previous training's checkpoint, its digest and log from ``run_dir``."""
    ckpt = run_dir / CHECKPOINT
    for stale in (ckpt, checkpoint_state.digest_path(ckpt), run_dir / TRAIN_LOG):
        stale.unlink(missing_ok=True)


def save_checkpoint(trainer: L.Trainer, path: Path) -> None:
    """Write then rename (``checkpoint.publish``: digest first), so a crash mid-write leaves
    the previous checkpoint intact and a damaged one is recognised.

    Call it on every rank: Lightning writes the file on global rank 0 only, then waits for
    all ranks (a barrier); rank 0 renames it."""
    tmp = atomic.beside(path)  # Lightning writes it on rank 0 only
    if trainer.is_global_zero:
        path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(tmp)
    if trainer.is_global_zero:
        checkpoint_state.publish(tmp, path)
