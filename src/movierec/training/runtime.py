"""Where and how a process trains: the device, torch threads, glibc's allocator, its rank.

Device resolution has one documented order: the argument, then ``$MOVIEREC_DEVICE``, then
cuda when available, then cpu.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
from collections.abc import Callable, Iterator

import torch

from movierec.errors import ParameterError

DEVICE_ENV = "MOVIEREC_DEVICE"


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
