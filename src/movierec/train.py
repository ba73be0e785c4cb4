"""Training: config dataclass, on-device epochs of fresh negatives, Lightning loop, resume.

One epoch = every training positive once plus ``negatives`` fresh unseen items per positive,
shuffled together. The rows live on the training device as three tensors; batches are
slices of them (no per-row Dataset, no DataLoader workers). After each epoch the model is
scored on the sampled validation protocol (the validation item against 99 unseen
candidates drawn once with ``eval_seed``; ties count against it), on at most ``val_users``
users (a fixed random subset: HR@10's standard error is ~0.003 at 20,000); the best
epoch's weights are kept and returned.

Randomness: the model's initial weights come from torch seeded with ``seed``; epoch ``e``
draws its negatives and its shuffle from ``numpy.random.default_rng([seed, e])``. An
interrupted run resumed from its last checkpoint therefore replays exactly the epochs it
would have run.

Working directory (``run_dir``) while training: ``checkpoints/last.ckpt`` (Lightning
checkpoint after every epoch: weights, optimizer, loop state, best weights, the epoch log and
the fingerprint of the data; loads with ``torch.load(weights_only=True)``), its digest
``last.ckpt.sha256`` (``movierec.checkpoint``) and ``train_log.csv`` (one row per epoch). The
command line trains in ``artifacts.work_dir(out)`` beside the run it replaces, never in it.
A resume verifies the checkpoint's digest, data and settings first (``ResumeError``).

Several processes (``Parallel``: ``devices`` per node times ``num_nodes``, Lightning DDP;
gloo on CPUs, NCCL on GPUs; launched by Lightning itself or by ``torchrun``/SLURM, whose
environment Lightning reads). ``batch_size`` stays the *global* batch: rows per optimizer
step, all ranks together. Every rank builds the same seeded epoch as one process would and
keeps its piece of every step (``shard_epoch``): step ``s`` covers the same rows
``[s * batch, (s + 1) * batch)`` as in one process, split into ``world`` contiguous pieces
whose sizes differ by at most one (the first ``n % world`` ranks take one row more). So
every rank runs exactly ``ceil(rows / batch)`` steps, including the short last one, and
together the ranks cover every row of the epoch exactly once. Each rank's loss is its
pieces' BCE *sum* times ``world / rows in the step``; DDP averages gradients over ranks, so
a step's update is that of the whole step's mean BCE, as in one process (up to float
summation order), even when the pieces differ in size or one is empty. DDP runs one
optimizer step per ``training_step`` (``manual_backward``: gradients sync once per wrapped
forward). Validation: every validation batch is split the same way across ranks; hits,
NDCG gain and user counts are summed over ranks (all_reduce), so every rank sees the same
figures and takes the same best-epoch and early-stopping decisions. Only global rank 0
writes ``train_log.csv`` and the checkpoint (temporary file, then rename); a resume needs
the run directory on a file system every node sees.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import dataclasses
import functools
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, RichProgressBar
from torch import nn

from movierec import atomic
from movierec import checkpoint as checkpoint_state
from movierec.checkpoint import ResumeError
from movierec.errors import ParameterError
from movierec.history import PRESET as HISTORY_PRESET
from movierec.models import ModelConfig, TorchScorer, build_model
from movierec.sampling import sample_candidates, sample_negatives, seen_keys
from movierec.split import Split

DEVICE_ENV = "MOVIEREC_DEVICE"
CHECKPOINT = Path("checkpoints") / "last.ckpt"
TRAIN_LOG = "train_log.csv"
VAL_K = 10
VAL_BATCH_ROWS = 1 << 16  # (user, candidate) pairs per validation step (CPU cache-friendly)
GROUP_ROWS = 16384  # rows per Lightning step: small batches run several optimizer steps
DECODE_ROWS = 1 << 22  # epoch rows decoded per chunk (bounded int64 temporaries)
STRATEGIES = ("auto", "ddp")  # auto: DDP when devices x num_nodes > 1, else one process
DDP_MODELS = ("tutorial", "gmf", "mlp", "neumf")  # the Lightning-trained models
RESUMABLE_CHANGES = {"epochs", "patience", "device"}  # may differ between a run and its resume


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tutorial"  # key into movierec.models.MODELS: tutorial | gmf | mlp | neumf
    factors: int = 8  # embedding size: GMF latent size; MLP per-side embedding (unless mlp_factors)
    layers: tuple[int, ...] = (64, 32)  # MLP tower hidden sizes after concat(user, item)
    mlp_factors: int | None = None  # NeuMF: MLP embedding size when it differs from factors
    dropout: float = 0.0  # dropout after each MLP tower layer
    init_std: float | None = None  # embeddings ~ N(0, init_std); None keeps torch's N(0, 1)
    epochs: int = 5  # maximum passes over the training positives
    batch_size: int | None = 512  # rows (positives + negatives) per step; None: auto_batch_size
    lr: float | None = 1e-3  # Adam learning rate; None: 1e-3 * sqrt(batch_size / 512)
    weight_decay: float = 0.0  # L2 penalty on every parameter (Adam's coupled weight decay)
    negatives: int = 4  # unseen items sampled per training positive, fresh every epoch
    seed: int = 0  # initial weights, negatives and shuffling
    eval_seed: int = 0  # validation candidates: fixed, so that runs compare on the same ones
    val_users: int | None = 20_000  # per-epoch validation on at most this many users; None: all
    patience: int | None = None  # stop after this many epochs without a better val HR@10
    device: str = "auto"  # auto | cpu | cuda | cuda:N (auto: $MOVIEREC_DEVICE, cuda, cpu)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size is None or self.batch_size >= 1,
            "lr": self.lr is None or self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "negatives": self.negatives >= 1,
            "patience": self.patience is None or self.patience >= 1,
            "val_users": self.val_users is None or self.val_users >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ParameterError(f"TrainConfig.{name} is out of range: {getattr(self, name)!r}")
        try:
            self.model_config(1, 1)  # validates the model fields
        except ValueError as e:
            raise ParameterError(str(e)) from None

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> TrainConfig:
        """The preset for ``model`` with ``overrides`` applied.

        None means "not given" (the preset stays), as for an omitted command-line option;
        ``dataclasses.replace`` sets a field to None (e.g. an automatic batch size).
        """
        if model not in PRESETS:
            raise ParameterError(f"unknown model {model!r}; known: {', '.join(PRESETS)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{"model": model, **PRESETS[model], **given})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ParameterError(f"unknown TrainConfig fields: {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    def resolved(self, rows_per_epoch: int) -> TrainConfig:
        """This config with an automatic batch size and learning rate made concrete."""
        batch = self.batch_size or auto_batch_size(rows_per_epoch)
        lr = self.lr or BASE_LR * math.sqrt(batch / BASE_BATCH)
        return dataclasses.replace(self, batch_size=batch, lr=lr)

    def model_config(self, n_users: int, n_items: int) -> ModelConfig:
        return ModelConfig(
            kind=self.model,
            n_users=n_users,
            n_items=n_items,
            factors=self.factors,
            layers=self.layers,
            mlp_factors=self.mlp_factors,
            dropout=self.dropout,
            init_std=self.init_std,
        )


BASE_BATCH, BASE_LR = 512, 1e-3  # the tutorial's batch and Adam learning rate
MAX_AUTO_BATCH = 16384
MIN_AUTO_STEPS = 500  # an automatic batch size leaves at least this many steps per epoch


def auto_batch_size(rows_per_epoch: int) -> int:
    """The largest power of two in [512, 16384] that leaves >= 500 steps per epoch.

    Dense Adam touches every embedding row at every step, so on a CPU a step costs about
    the same at batch 512 as at 16,384 once the tables are large (ML-25M shaped data:
    ~4x the rows/s at 16,384). Small data needs the steps: ml-latest-small keeps 512.
    """
    batch = BASE_BATCH
    while batch * 2 <= MAX_AUTO_BATCH and rows_per_epoch / (batch * 2) >= MIN_AUTO_STEPS:
        batch *= 2
    return batch


# Per-model defaults (TrainConfig's own field defaults are the tutorial's as written).
PRESETS: dict[str, dict[str, Any]] = {
    # The tutorial's NCF: embeddings of 8, MLP 64 -> 32 -> 1, Adam, 4 negatives, 5 epochs.
    # It trained at batch 512, lr 1e-3; the batch here grows with the data (auto_batch_size)
    # and the learning rate with the square root of the batch: 512 and 1e-3 on
    # ml-latest-small, 16,384 and 5.7e-3 on ML-25M-shaped data (bench/RESULTS.md).
    "tutorial": dict(factors=8, layers=(64, 32), init_std=None, epochs=5, batch_size=None, lr=None),
    "gmf": dict(factors=32, layers=(), init_std=0.01, epochs=20, batch_size=256, lr=1e-3),
    # He et al.'s pyramid [64, 32, 16, 8]: embeddings of 32 per side, then 32, 16, 8.
    "mlp": dict(factors=32, layers=(32, 16, 8), init_std=0.01, epochs=20, batch_size=256),
    # Predictive factors 32: GMF of 32 beside an MLP [128 -> 64 -> 32].
    "neumf": dict(
        factors=32, mlp_factors=64, layers=(64, 32), init_std=0.01, epochs=20, batch_size=256
    ),
    # movierec.history.PRESET: the user is a learned recency-weighted mean of their last 20
    # items; sampled softmax over 64 negatives (chosen on validation, bench/RESULTS.md)
    "history": dict(HISTORY_PRESET),
}


def resolve_device(requested: str | None = "auto") -> torch.device:
    """Argument, then $MOVIEREC_DEVICE, then cuda when available, then cpu."""
    choice = requested if requested not in (None, "", "auto") else os.environ.get(DEVICE_ENV, "")
    if choice in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except RuntimeError as e:
        raise ParameterError(f"unknown device {choice!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device {choice!r} requested but CUDA is not available")
    return device


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's malloc.h, and its defaults:
_TRIM_THRESHOLD_DEFAULT, _MMAP_MAX_DEFAULT = 128 * 1024, 65536
_keeping_freed_memory = False


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return None


def keep_freed_memory(on: bool = True) -> None:
    """While training on glibc (Linux): large blocks come from the heap and freed memory
    stays with the process; ``on=False`` puts back glibc's default values (its dynamic
    mmap threshold stays off once any of them has been set).

    By default glibc maps every block above 32 MiB afresh and unmaps it when freed. Each
    step's dense embedding gradients are such blocks at ML-25M scale (NeuMF f=32: 86 MB a
    step), so every step page-faulted them in again: a fifth of a step (bench/RESULTS.md).
    The epoch's gigabyte-sized arrays are still mapped (``mapped_large_blocks``), so they
    go back to the system when freed. Elsewhere: no-op.
    """
    global _keeping_freed_memory
    mallopt = _mallopt()
    if mallopt is None:
        return
    mallopt(_M_MMAP_MAX, 0 if on else _MMAP_MAX_DEFAULT)
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1 if on else _TRIM_THRESHOLD_DEFAULT)
    _keeping_freed_memory = on


@contextlib.contextmanager
def mapped_large_blocks() -> Iterator[None]:
    """Within: glibc's default for large blocks (mapped, returned when freed)."""
    mallopt = _mallopt() if _keeping_freed_memory else None
    if mallopt is None:
        yield
        return
    mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
    try:
        yield
    finally:
        mallopt(_M_MMAP_MAX, 0)


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
    if config.model not in DDP_MODELS:
        raise ParameterError(
            f"DDP (--devices/--num-nodes above 1) supports {'/'.join(DDP_MODELS)}; "
            f"the {config.model} model trains in one process (its own loop)"
        )
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


def launch_rank(env: dict[str, str] | None = None, devices: int = 1) -> int:
    """This process's global rank as its launcher announced it (0 when not launched as a rank).

    torchrun sets RANK; Lightning's own launcher sets NODE_RANK and LOCAL_RANK for the
    processes it starts (global rank = node rank * devices per node + local rank).
    """
    env = dict(os.environ) if env is None else env
    if "RANK" in env:
        return int(env["RANK"])
    return int(env.get("NODE_RANK", 0)) * devices + int(env.get("LOCAL_RANK", 0))


def threads_per_rank(cores: int, local_world_size: int) -> int:
    """Torch threads of one CPU rank: the cores shared among the ranks of a node, at least 1."""
    return max(1, cores // max(1, local_world_size))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------- data


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


def shard_batches(batches: Fixed, world: int, rank: int, device: torch.device) -> Fixed:
    """``rank``'s piece of every batch (same count of batches on every rank), on ``device``."""
    if world == 1:
        return Fixed([tuple(t.to(device) for t in b) for b in batches])
    out = []
    for b in batches:
        start, size = piece(len(b[0]), world, rank)
        out.append(tuple(t[int(start) : int(start + size)].to(device) for t in b))
    return Fixed(out)


@dataclass(frozen=True)
class TrainRows:
    """Training positives sorted by user, plus what negative sampling needs."""

    users: np.ndarray  # int64 (P,), ascending: sample_negatives is fast on sorted queries
    keys: np.ndarray  # int64 (P,): user * n_items + item of each positive, ascending
    seen: Any  # scipy CSR (n_users, n_items): every interaction, never sampled as a negative
    seen_keys: np.ndarray  # seen_keys(seen)
    device: torch.device

    @classmethod
    def from_split(cls, split: Split, device: torch.device) -> TrainRows:
        t = split.train
        keys = np.sort(t.users.astype(np.int64) * t.n_items + t.items)
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # np.unique hashes: slow on numpy 2.4
        seen = split.seen_anywhere()
        return cls(keys // t.n_items, keys, seen, seen_keys(seen), device)

    def __len__(self) -> int:
        return int(self.keys.size)

    def epoch(
        self,
        seed: int,
        epoch: int,
        negatives: int,
        *,
        index: np.ndarray | None = None,
        device: torch.device | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """(users, items, labels) of one epoch, shuffled, on the device.

        Negatives are drawn for the user-sorted positives, then all rows are shuffled
        together (one in-place shuffle of packed ``(user * n_items + item) * 2 + label``). ``index``
        keeps only those rows (a rank's ``Shard.index``), in its order; ``device``
        overrides ``self.device``.
        """
        rng = np.random.default_rng([seed, epoch])
        n_items, n_pos = self.seen.shape[1], self.keys.size
        neg = sample_negatives(self.seen, self.users, negatives, rng, keys=self.seen_keys)
        # one int64 per row, (user * n_items + item) * 2 + label, shuffled in place: the
        # epoch's peak memory is this array and the outputs (ML-25M shaped: ~2 GB, not ~5)
        rows = np.empty(n_pos * (1 + negatives), dtype=np.int64)
        np.multiply(self.keys, 2, out=rows[:n_pos])
        rows[:n_pos] += 1
        neg_rows = rows[n_pos:].reshape(n_pos, negatives)
        np.multiply(self.users[:, None], n_items, out=neg_rows)
        neg_rows += neg
        neg_rows *= 2
        del neg
        rng.shuffle(rows)
        if index is not None:
            rows = rows[index]
        users = np.empty(rows.size, dtype=np.int32)
        items = np.empty(rows.size, dtype=np.int32)
        labels = np.empty(rows.size, dtype=np.float32)
        for s in range(0, rows.size, DECODE_ROWS):
            key, label = np.divmod(rows[s : s + DECODE_ROWS], 2)
            user = key // n_items
            users[s : s + DECODE_ROWS] = user
            items[s : s + DECODE_ROWS] = key - user * n_items
            labels[s : s + DECODE_ROWS] = label
        del rows
        dev = self.device if device is None else device
        return tuple(torch.as_tensor(a, device=dev) for a in (users, items, labels))


class EpochBatches:
    """Re-iterable over batches; each ``iter()`` builds a fresh epoch with ``make_epoch``.

    Batches of ``batch_size`` rows, or of the given ``sizes`` (a rank's pieces of each step).
    """

    def __init__(
        self,
        make_epoch: Callable[[], tuple[torch.Tensor, ...]],
        n_rows: int,
        batch_size: int,
        sizes: np.ndarray | None = None,
    ) -> None:
        self.make_epoch, self.n_rows, self.batch_size = make_epoch, n_rows, batch_size
        self.sizes = sizes

    def __len__(self) -> int:
        if self.sizes is not None:
            return int(self.sizes.size)
        return math.ceil(self.n_rows / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        columns = self.make_epoch()
        if self.sizes is not None:
            yield from zip(*(c.split(self.sizes.tolist()) for c in columns), strict=True)
            return
        for s in range(0, columns[0].numel(), self.batch_size):
            yield tuple(c[s : s + self.batch_size] for c in columns)


class Fixed:
    """A fixed sequence of batches, iterated whole every epoch (one loader to Lightning)."""

    def __init__(self, batches: list[tuple[torch.Tensor, ...]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return iter(self.batches)


def validation_batches(
    split: Split, seed: int, device: torch.device, max_users: int | None = None
) -> Fixed:
    """(users (B,), items (B, 1 + 99)) chunks: the validation item first, then candidates.

    Candidates come from ``sample_candidates(split.seen_anywhere(), users,
    default_rng(seed))``, as in ``evaluate.holdout(split, part="validation", seed=seed)``.
    With ``max_users``, a fixed random subset of that many users (drawn first from the same
    generator) stands in for all of them.
    """
    v = split.validation
    if not len(v):
        return Fixed([])
    rng = np.random.default_rng(seed)
    if max_users is not None and len(v) > max_users:
        v = v.subset(np.sort(rng.choice(len(v), max_users, replace=False)))
    users = v.users.astype(np.int64)
    cand = sample_candidates(split.seen_anywhere(), users, rng)
    items = np.concatenate([v.items[:, None].astype(np.int64), cand], axis=1)
    step = max(1, VAL_BATCH_ROWS // items.shape[1])
    u, i = torch.as_tensor(users, device=device), torch.as_tensor(items, device=device)
    return Fixed([(u[s : s + step], i[s : s + step]) for s in range(0, len(u), step)])


def sampled_hits(logits: torch.Tensor, k: int = VAL_K) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of HR@k and NDCG@k over rows whose column 0 is the positive; ties count against it."""
    rank = (logits[:, 1:] >= logits[:, :1]).sum(dim=1)
    hit = rank < k
    gain = torch.where(hit, 1.0 / torch.log2(rank.float() + 2.0), torch.zeros_like(logits[:, 0]))
    return hit.sum(), gain.sum()


# ----------------------------------------------------------------------------- the loop


@dataclass
class EpochLog:
    epoch: int  # 1-based
    loss: float  # mean training BCE over the epoch's batches
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


@dataclass
class EpochStats:
    """Running figures of the current epoch (a plain object: cheap to update every step)."""

    device: torch.device
    started: float = field(default_factory=time.perf_counter)
    loss_sum: torch.Tensor | None = None  # on the device: no sync per step
    steps: int = 0
    rows: int = 0
    train_start: float | None = None  # first batch (the epoch's rows are sampled before it)
    train_end: float | None = None  # validation start
    hits: torch.Tensor | None = None
    gain: torch.Tensor | None = None
    val_users: int = 0
    val: tuple[float, float] = (math.nan, math.nan)  # HR@10, NDCG@10
    live: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.hits = torch.zeros((), device=self.device)
        self.gain = torch.zeros((), device=self.device)

    def train_seconds(self) -> float:
        end = self.train_end or time.perf_counter()
        return end - (self.train_start or end)


class NCFModule(L.LightningModule):
    """The training loop: BCE-with-logits on shuffled positive/negative rows, Adam.

    Manual optimization with the plain torch optimizer: the whole update is visible in
    ``training_step``. Float32, no precision plugin. One process: each call runs several
    optimizer steps (``GROUP_ROWS``). DDP: one optimizer step per call, on this rank's
    piece of the step (``shard_epoch``), with ``manual_backward`` so that gradients sync.

    The loaders come from ``train_dataloader`` / ``val_dataloader``, called once the
    strategy has placed this module on its rank's device.
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        rows: TrainRows,
        val: Fixed,
        run_dir: Path | None,
        fresh: bool = True,
        fingerprint: str | None = None,
    ) -> None:
        super().__init__()
        self.model, self.config, self.rows, self.val = model, config, rows, val
        self.run_dir = run_dir
        self.fingerprint = fingerprint  # checkpoint.data_fingerprint of the split, saved with it
        self.fresh = fresh  # not a resume: remove a previous run's checkpoint and log first
        self.automatic_optimization = False
        self.history: list[EpochLog] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = 0
        self.stopped_early = False
        self.stats = EpochStats(torch.device("cpu"))
        self.shard: Shard | None = None  # DDP: this rank's share of every epoch

    @property
    def world(self) -> int:
        return self.trainer.world_size

    def setup(self, stage: str) -> None:
        if self.world > 1 and self.device.type == "cpu":
            torch.set_num_threads(threads_per_rank(available_cores(), self.trainer.num_devices))

    def on_fit_start(self) -> None:
        if self.fresh and self.run_dir is not None and self.trainer.is_global_zero:
            remove_work_files(self.run_dir)

    def train_dataloader(self) -> EpochBatches:
        return self.train_batches()

    def val_dataloader(self) -> Fixed:
        return shard_batches(self.val, self.world, self.trainer.global_rank, self.device)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        c, params = self.config, self.model.parameters()
        fused = self.device.type in ("cpu", "cuda")  # one kernel for all tensors: far less overhead
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay, fused=fused)

    def train_batches(self) -> EpochBatches:
        """One process: groups of whole batches: one ``training_step`` call runs several
        optimizer steps when batches are small, so Lightning's per-call overhead (~1 ms on
        a CPU) is paid once per ``GROUP_ROWS`` rows. Batch boundaries are the same as
        without groups. DDP: this rank's piece of every step, one per call."""
        bs = self.config.batch_size
        n_rows = len(self.rows) * (1 + self.config.negatives)
        if self.world == 1:
            return EpochBatches(self._make_epoch, n_rows, max(1, GROUP_ROWS // bs) * bs)
        self.shard = shard_epoch(n_rows, bs, self.world, self.trainer.global_rank)
        return EpochBatches(self._make_epoch, n_rows, bs, sizes=self.shard.sizes)

    def _make_epoch(self) -> tuple[torch.Tensor, ...]:
        c = self.config
        index = None if self.shard is None else self.shard.index
        device = None if self.shard is None else self.device
        with mapped_large_blocks():  # gigabytes, freed at the epoch's end: back to the system
            return self.rows.epoch(
                c.seed, self.current_epoch, c.negatives, index=index, device=device
            )

    # -- training
    def on_train_start(self) -> None:
        keep_freed_memory(True)  # after the rows and validation sets are built

    def on_train_end(self) -> None:
        keep_freed_memory(False)

    def on_train_epoch_start(self) -> None:
        self.stats = EpochStats(self.device)

    def training_step(self, group: tuple[torch.Tensor, ...], group_idx: int) -> None:
        st, opt = self.stats, self.optimizers(use_pl_optimizer=False)
        if st.train_start is None:
            st.train_start = time.perf_counter()
        if self.shard is not None:
            self._ddp_step(group, int(self.shard.step_rows[group_idx]), opt)
            return
        for users, items, labels in zip(*(c.split(self.config.batch_size) for c in group)):
            loss = F.binary_cross_entropy_with_logits(self.model(users, items), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            st.loss_sum += loss.detach()
            st.steps += 1
            st.rows += labels.numel()

    def _ddp_step(
        self, batch: tuple[torch.Tensor, ...], step_rows: int, opt: torch.optim.Optimizer
    ) -> None:
        """One optimizer step on this rank's piece of a step of ``step_rows`` rows.

        DDP averages gradients over the ranks, so scaling each rank's BCE sum by
        ``world / step_rows`` makes the update that of the whole step's mean BCE."""
        users, items, labels = batch
        bce = F.binary_cross_entropy_with_logits(self.model(users, items), labels, reduction="sum")
        opt.zero_grad(set_to_none=True)
        self.manual_backward(bce * (self.world / step_rows))
        opt.step()
        st = self.stats
        st.loss_sum += bce.detach() / step_rows  # summed over ranks: the step's mean BCE
        st.steps += 1
        st.rows += labels.numel()

    def sum_over_ranks(self, values: Sequence[float | torch.Tensor]) -> list[float]:
        """``values`` summed over every rank (as they are with one process)."""
        if self.world == 1:
            return [float(v) for v in values]
        t = torch.stack(
            [torch.as_tensor(v, dtype=torch.float64, device=self.device) for v in values]
        )
        return self.trainer.strategy.reduce(t, reduce_op="sum").tolist()

    def live_metrics(self) -> dict[str, float]:
        """Loss and rows/s for the progress bar; syncs with the device at most twice a second.

        DDP: rank 0's share times the world size (an estimate: no collective per refresh)."""
        st, now = self.stats, time.perf_counter()
        if st.steps and now - st.live.get("at", 0.0) > 0.5:
            elapsed = max(now - (st.train_start or now), 1e-9)
            share = 1 if self.shard is None else self.world
            loss = float(st.loss_sum) * share / st.steps
            st.live = {"at": now, "loss": loss, "rows/s": st.rows * share / elapsed}
        return {k: v for k, v in st.live.items() if k != "at"}

    # -- validation
    def on_validation_epoch_start(self) -> None:
        self.stats.train_end = time.perf_counter()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        users, items = batch
        hits, gain = sampled_hits(self.model(users[:, None], items))
        self.stats.hits += hits
        self.stats.gain += gain
        self.stats.val_users += users.numel()

    def on_validation_epoch_end(self) -> None:
        st = self.stats
        hits, gain, users = self.sum_over_ranks([st.hits, st.gain, st.val_users])
        n = max(users, 1)
        st.val = (hits / n, gain / n)
        self.log("val_hr@10", st.val[0], prog_bar=True)

    # -- bookkeeping after validation: best weights, early stopping, log, checkpoint
    def on_train_epoch_end(self) -> None:
        st = self.stats
        hr, ndcg = st.val
        loss_sum, rows = self.sum_over_ranks([st.loss_sum, st.rows])
        row = EpochLog(
            epoch=self.current_epoch + 1,
            loss=loss_sum / max(st.steps, 1),
            val_hr10=hr,
            val_ndcg10=ndcg,
            rows_per_s=rows / max(st.train_seconds(), 1e-9),
            seconds=time.perf_counter() - st.started,
        )
        self.history.append(row)
        best_hr = -1.0 if self.best_state is None else self.history[self.best_epoch - 1].val_hr10
        if self.best_state is None or not (hr <= best_hr):  # nan (no validation): keep latest
            self.best_epoch = row.epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        patience = self.config.patience
        if patience is not None and row.epoch - self.best_epoch >= patience:
            self.stopped_early = True
            self.trainer.should_stop = True
        if self.run_dir is not None:
            if self.trainer.is_global_zero:
                write_train_log(self.run_dir / TRAIN_LOG, self.history)
            save_checkpoint(self.trainer, self.run_dir / CHECKPOINT)

    # -- resume
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[checkpoint_state.STATE] = {
            "config": self.config.to_dict(),
            checkpoint_state.DATA: self.fingerprint,
            "history": [dataclasses.asdict(h) for h in self.history],
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "stopped_early": self.stopped_early,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.restore(checkpoint["movierec"])

    def restore(self, state: dict[str, Any]) -> None:
        """Loop state from a checkpoint that ``resume_checkpoint`` verified."""
        self.history = [EpochLog(**h) for h in state["history"]]
        self.best_epoch = int(state["best_epoch"])
        self.best_state = state["best_state"]
        self.stopped_early = bool(state["stopped_early"])
        torch.set_rng_state(state["torch_rng"])
        cuda_rng = state.get("cuda_rng") or []
        if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_rng)


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


def write_train_log(path: Path, history: Sequence[EpochLog]) -> None:
    with atomic.replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(EpochLog.CSV_HEADER)
        w.writerows(h.csv_row() for h in history)


class ProgressBar(RichProgressBar):
    """Lightning's rich bar showing the running loss and rows/s without a sync per step."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        live = pl_module.live_metrics() if isinstance(pl_module, NCFModule) else {}
        if "loss" in live:
            items["loss"] = f"{live['loss']:.4f}"
            items["rows/s"] = f"{live['rows/s'] / 1e3:,.0f}k"
        return items


# ----------------------------------------------------------------------------- fit


@dataclass
class TrainResult:
    model: nn.Module  # best-validation weights, eval mode, on the training device
    config: TrainConfig  # as run: automatic batch size and learning rate made concrete
    model_config: ModelConfig
    history: list[EpochLog]  # one row per epoch run, including any before a resume
    best_epoch: int  # 1-based epoch whose weights ``model`` holds
    stopped_early: bool
    device: torch.device
    seconds: float = field(default=0.0)  # wall time of this call
    rank: int = 0  # global rank of this process: only rank 0 saves the run and reports

    @property
    def best(self) -> EpochLog:
        return self.history[self.best_epoch - 1]

    def scorer(self) -> TorchScorer:
        return TorchScorer(self.model, self.device)


def fit(
    split: Split,
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    init: nn.Module | None = None,
    callbacks: Sequence[Callback] = (),
    parallel: Parallel | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``split.train``; select the epoch by validation HR@10.

    ``run_dir``: where the per-epoch checkpoint and ``train_log.csv`` go (none when None).
    ``resume``: continue from ``run_dir``'s last checkpoint (a fresh start when there is
    none); it must be intact and of the same data (``checkpoint.read``), and the settings
    must match except ``epochs``, ``patience`` and ``device`` (else ``ResumeError``). The
    history model resumes the same way (``history.fit_history``).
    ``init``: a prepared model to start from instead of a fresh one (e.g.
    ``NeuMF.from_pretrained(gmf, mlp)``); it must match ``config``'s model shapes.
    ``callbacks``: extra Lightning callbacks.
    ``parallel``: several processes (DDP); every rank calls ``fit`` with the same
    arguments (Lightning's launcher re-runs the calling command for ranks 1..N-1) and gets
    the same model; ``TrainResult.rank`` tells rank 0, the one that should save and report.
    As the rows of every step do not depend on the number of ranks, a checkpoint resumes
    with another ``parallel`` too.
    """
    parallel = parallel or Parallel()
    check_parallel(config, parallel)
    run_dir = Path(run_dir) if run_dir is not None else None
    if resume and run_dir is None:
        raise ValueError("resume=True needs the run_dir of the interrupted run")
    if config.model == "history":  # its own loop: causal histories, sampled softmax
        if init is not None or callbacks:
            raise ValueError("the history model takes no init model or callbacks")
        from movierec.history import fit_history

        return fit_history(split, config, progress=progress, run_dir=run_dir, resume=resume)
    started = time.perf_counter()
    device = resolve_device(config.device)
    # DDP: the data is built on the CPU; each rank moves its share to its own device
    data_device = torch.device("cpu") if parallel.distributed else device
    rows = TrainRows.from_split(split, data_device)
    config = config.resolved(rows_per_epoch=len(rows) * (1 + config.negatives))
    model_config = config.model_config(split.n_users, split.n_items)
    torch.manual_seed(config.seed)
    model = build_model(model_config) if init is None else init
    if init is not None and _shapes(init) != _shapes(build_model(model_config)):
        raise ValueError("init does not match the model described by config")
    val = validation_batches(split, config.eval_seed, data_device, config.val_users)

    fingerprint = checkpoint_state.data_fingerprint(split) if run_dir is not None else None
    saved = resume_checkpoint(run_dir, config, fingerprint) if resume else None
    resume_from = run_dir / CHECKPOINT if saved is not None and run_dir is not None else None
    module = NCFModule(model, config, rows, val, run_dir, saved is None, fingerprint)
    rank = launch_rank(devices=parallel.devices)
    if saved is not None and _finished(saved, config):
        module.restore(saved["movierec"])  # nothing left to run: skip the Trainer
    else:
        trainer = _trainer(config, device, progress, callbacks, parallel, validate=len(val) > 0)
        trainer.fit(module, ckpt_path=resume_from, weights_only=True)
        rank, device = trainer.global_rank, module.device
    if module.best_state is not None:
        model.load_state_dict(module.best_state)
    model.to(device).eval()
    return TrainResult(
        model=model,
        config=config,
        model_config=model_config,
        history=module.history,
        best_epoch=module.best_epoch,
        stopped_early=module.stopped_early,
        device=device,
        seconds=time.perf_counter() - started,
        rank=rank,
    )


def _trainer(
    config: TrainConfig,
    device: torch.device,
    progress: bool,
    callbacks: Sequence[Callback],
    parallel: Parallel,
    validate: bool = True,
) -> L.Trainer:
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*(does not have many workers|num_workers).*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # lightning 2.6 on torch 2.13
    warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")  # reduced by NCFModule
    accelerator = {"cuda": "gpu"}.get(device.type, device.type)
    devices: Any = [device.index or 0] if device.type == "cuda" else 1
    strategy: Any = "auto"
    if parallel.distributed:
        devices, strategy = parallel.devices, "ddp"  # gloo on CPUs, NCCL on GPUs
    bars = [ProgressBar(leave=True)] if progress else []
    return L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=parallel.num_nodes,
        strategy=strategy,
        use_distributed_sampler=False,  # NCFModule shards its own rows
        limit_val_batches=None if validate else 0,
        max_epochs=config.epochs,
        logger=False,
        enable_checkpointing=False,  # our own per-epoch checkpoint (NCFModule.on_train_epoch_end)
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        callbacks=[*bars, *callbacks],
    )


def _finished(saved: dict[str, Any], config: TrainConfig) -> bool:
    state = saved["movierec"]
    return bool(state["stopped_early"]) or len(state["history"]) >= config.epochs


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
