"""DDP arithmetic: how many processes, and which rows of every step each rank trains.

Several processes (``Parallel``: ``devices`` per node times ``num_nodes``, Lightning DDP;
gloo on CPUs, NCCL on GPUs; launched by Lightning itself or by ``torchrun``/SLURM, whose
environment Lightning reads). ``batch_size`` stays the *global* batch: examples per optimizer
step, all ranks together. Every rank builds the same seeded epoch as one process would and
keeps its piece of every step (``shard_epoch``): step ``s`` covers the same examples
``[s * batch, (s + 1) * batch)`` as in one process, split into ``world`` contiguous pieces
whose sizes differ by at most one (the first ``n % world`` ranks take one more). So every
rank runs exactly ``ceil(examples / batch)`` steps, including the short last one, and
together the ranks cover every example of the epoch exactly once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from movierec.errors import ParameterError
from movierec.training.config import TrainConfig
from movierec.training.runtime import resolve_device

STRATEGIES = ("auto", "ddp")  # auto: DDP when devices x num_nodes > 1, else one process


@dataclass(frozen=True)
class Parallel:
    """How many training processes: ``devices`` per node times ``num_nodes`` (DDP when > 1).

    On GPUs a device is a GPU; on CPUs each device is one process (gloo backend) with
    ``cpu cores // devices`` torch threads.
    """

    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ParameterError(f"--devices must be at least 1, got {self.devices}")
        if self.num_nodes < 1:
            raise ParameterError(f"--num-nodes must be at least 1, got {self.num_nodes}")
        if self.strategy not in STRATEGIES:
            raise ParameterError(
                f"unknown strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}"
            )
        if self.num_nodes > 1 and self.strategy != "ddp":
            raise ParameterError("--num-nodes above 1 needs --strategy ddp")

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def check_parallel(config: TrainConfig, parallel: Parallel) -> None:
    """Raise ParameterError if ``config`` cannot train with ``parallel`` (before data loads)."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun and Lightning's launcher
    if launched > 1 and launched != parallel.world_size:
        raise ParameterError(
            f"launched as {launched} processes (WORLD_SIZE) but --devices x --num-nodes is "
            f"{parallel.world_size}; give matching --devices and --num-nodes"
        )
    if not parallel.distributed:
        return
    device = resolve_device(config.device)
    if device.type not in ("cpu", "cuda"):
        raise ParameterError(f"DDP runs on cpu or cuda devices, not {device.type}")
    if device.type == "cuda" and device.index is not None:
        raise ParameterError(
            f"--device {config.device} names one GPU; with --devices use --device cuda"
        )
    if device.type == "cuda" and parallel.devices > torch.cuda.device_count():
        raise ParameterError(
            f"--devices {parallel.devices}: this machine has {torch.cuda.device_count()} GPU(s)"
        )


def piece(n: int | np.ndarray, world: int, rank: int) -> tuple[Any, Any]:
    """(start, size) of ``rank``'s contiguous piece of ``n`` rows split ``world`` ways; the
    first ``n % world`` ranks take one row more. Works elementwise on arrays of ``n``."""
    base, extra = np.divmod(n, world)
    return rank * base + np.minimum(rank, extra), base + (rank < extra)


@dataclass(frozen=True)
class Shard:
    """One rank's rows of an epoch: its piece of every step, in training order."""

    index: np.ndarray  # int64 positions into the epoch's rows (as one process orders them)
    sizes: np.ndarray  # int64 (steps,): this rank's rows in each step (0 is possible)
    step_rows: np.ndarray  # int64 (steps,): rows of each step over all ranks

    @property
    def steps(self) -> int:
        return int(self.sizes.size)


def shard_epoch(n_rows: int, batch_size: int, world: int, rank: int) -> Shard:
    """``rank``'s share of an epoch of ``n_rows`` rows trained at global ``batch_size``.

    Step ``s`` covers rows ``[s * batch_size, min((s + 1) * batch_size, n_rows))`` (one
    process's batch ``s``); each rank takes its ``piece`` of it. Every rank gets the same
    number of steps, ``ceil(n_rows / batch_size)``; the ranks together cover each row once.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    step_start = np.arange(0, n_rows, batch_size, dtype=np.int64)
    step_rows = np.minimum(batch_size, n_rows - step_start)
    start, size = piece(step_rows, world, rank)
    start = step_start + start
    offsets = np.cumsum(size) - size  # where each step's piece begins in this rank's rows
    index = np.repeat(start - offsets, size) + np.arange(int(size.sum()), dtype=np.int64)
    return Shard(index, size.astype(np.int64), step_rows)
