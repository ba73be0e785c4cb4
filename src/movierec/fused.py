"""Whole-catalogue scoring of a two-layer MLP tower on the CPU in one fused pass.

``Tower.dot_all`` in torch writes each (user, item) pair's first activation to memory and
reads it back for a matrix product; on a CPU that traffic costs as much as the arithmetic.
The C extension ``movierec._tower`` computes a tile of items' activations into a buffer
that stays in L1 and finishes their scores in registers (~2x the torch path,
bench/RESULTS.md); it releases the GIL, so threads split the work. It is built at install
time where a C compiler exists; without it, off x86-64 (no AVX2), or for a first layer
wider than ``MAX_H1``, ``available()`` is False and callers keep the torch path, which
gives the same scores.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

try:
    from movierec import _tower
except ImportError:  # not compiled here: the torch path serves
    _tower = None

LANES = _tower.lanes() if _tower is not None else 0  # floats per vector; 0: no kernel
MAX_H1 = 256  # widest first layer the kernel takes (_tower.c's MAX_H1)


def available(h1: int = 1) -> bool:
    """Whether the kernel runs here for a first layer of width ``h1``."""
    return LANES > 0 and 1 <= h1 <= MAX_H1


def _padded(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``x`` zero-padded along ``axis`` to ``size`` (zero weights add exact zeros)."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return np.ascontiguousarray(np.pad(x, pad), dtype=np.float32)


def tower2_into(
    out: torch.Tensor,
    user_part: torch.Tensor,
    item_part: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    w: torch.Tensor,
    threads: int | None = None,
    lanes: int | None = None,
) -> torch.Tensor:
    """``out[u, i] += w . relu(weight @ relu(user_part[u] + item_part[i]) + bias)``.

    ``out`` (B, n) is a contiguous float32 CPU tensor; ``user_part`` (B, h1) and
    ``item_part`` (n, h1) are the first layer's halves (its bias in the user half),
    ``weight`` (h2, h1) and ``bias`` (h2,) the second layer, ``w`` (h2,) the weights on its
    output. ``threads`` defaults to torch's intra-op thread count; ``lanes`` (8: AVX2, 16:
    AVX-512) to the widest this CPU runs.
    """
    if not available(user_part.shape[1]):
        raise RuntimeError(f"no fused kernel here for a first layer of {user_part.shape[1]}")
    if out.dtype != torch.float32 or not out.is_contiguous() or out.device.type != "cpu":
        raise ValueError("out must be a contiguous float32 CPU tensor")
    lanes = lanes or LANES
    (n_users, h1), n_items, h2 = user_part.shape, item_part.shape[0], weight.shape[0]
    if out.shape != (n_users, n_items):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(n_users, n_items)}")
    h1p, h2p = -(-h1 // lanes) * lanes, -(-h2 // (2 * lanes)) * 2 * lanes
    a = _padded(user_part.float().numpy(), h1p, axis=1)
    b = _padded(item_part.float().numpy(), h1p, axis=1)
    w2 = _padded(_padded(weight.float().numpy().T, h2p, axis=1), h1p, axis=0)
    c2 = _padded(bias.float().numpy(), h2p, axis=0)
    wp = _padded(w.float().numpy(), h2p, axis=0)
    o = out.numpy()
    threads = max(1, threads or torch.get_num_threads())

    def run(u0: int, u1: int, i0: int, i1: int) -> None:
        _tower.tower2(lanes, u0, u1, i0, i1, n_items, h1p, h2p, a, b, w2, c2, wp, o)

    if n_users >= threads:  # each thread a contiguous range of users
        cuts = [n_users * t // threads for t in range(threads + 1)]
        parts = [(cuts[t], cuts[t + 1], 0, n_items) for t in range(threads)]
    else:  # few users (one request): each thread a range of items
        cuts = [n_items * t // threads for t in range(threads + 1)]
        parts = [(0, n_users, cuts[t], cuts[t + 1]) for t in range(threads)]
    parts = [p for p in parts if p[0] < p[1] and p[2] < p[3]]
    if len(parts) == 1:
        run(*parts[0])
    else:
        with ThreadPoolExecutor(len(parts)) as pool:
            for f in [pool.submit(run, *p) for p in parts]:
                f.result()
    return out
