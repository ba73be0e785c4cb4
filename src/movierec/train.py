"""The training API in one import (``from movierec.train import TrainConfig, fit``).

Re-exports the public names of ``movierec.training``'s modules, where they are defined and
documented; importing this module imports Lightning.
"""

from __future__ import annotations

from movierec.checkpoint import ResumeError
from movierec.training.batches import EpochBatches, Fixed, shard_batches, validation_batches
from movierec.training.config import PRESETS, RESUMABLE_CHANGES, TrainConfig, auto_batch_size
from movierec.training.epochs import CausalRows, TrainRows, examples_for
from movierec.training.files import (
    CHECKPOINT,
    TRAIN_LOG,
    EpochLog,
    check_resumable,
    remove_work_files,
    resume_checkpoint,
    write_train_log,
)
from movierec.training.fit import fit
from movierec.training.loop import DivergedError, TrainingModule
from movierec.training.ranks import STRATEGIES, Parallel, Shard, check_parallel, piece, shard_epoch
from movierec.training.result import TrainResult
from movierec.training.runtime import (
    DEVICE_ENV,
    available_cores,
    keep_freed_memory,
    launch_rank,
    mapped_large_blocks,
    resolve_device,
    threads_per_rank,
)

__all__ = [
    "CHECKPOINT",
    "DEVICE_ENV",
    "PRESETS",
    "RESUMABLE_CHANGES",
    "STRATEGIES",
    "TRAIN_LOG",
    "CausalRows",
    "DivergedError",
    "EpochBatches",
    "EpochLog",
    "Fixed",
    "Parallel",
    "ResumeError",
    "Shard",
    "TrainConfig",
    "TrainResult",
    "TrainRows",
    "TrainingModule",
    "auto_batch_size",
    "available_cores",
    "check_parallel",
    "check_resumable",
    "examples_for",
    "fit",
    "keep_freed_memory",
    "launch_rank",
    "mapped_large_blocks",
    "piece",
    "remove_work_files",
    "resolve_device",
    "resume_checkpoint",
    "shard_batches",
    "shard_epoch",
    "threads_per_rank",
    "validation_batches",
    "write_train_log",
]
