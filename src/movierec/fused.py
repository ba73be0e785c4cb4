"""Whole-catalogue scoring of a two-layer MLP tower on the CPU in one fused pass.

``Tower.dot_all`` in torch writes each (user, item) pair's first activation to memory and
reads it back for a matrix product; on a CPU that traffic costs as much as the arithmetic.
The C extension ``movierec._tower`` keeps the activation in a vector register instead
(~2x per core, bench/RESULTS.md) and releases the GIL, so threads split the work. It is
built at install time where a C compiler exists; without it, or off x86-64 (no AVX2),
``available()`` is False and callers keep the torch path, which gives the same scores.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

try:
    from movierec import _tower
except ImportError:  # not compiled here: the torch path serves
    _tower = None

LANES = _tower.lanes() if _tower is not None else 0  # items per vector; 0: no kernel


def available() -> bool:
    return LANES > 0


def _padded(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``x`` zero-padded along ``axis`` to ``size`` (zero weights add exact zeros)."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return np.ascontiguousarray(np.pad(x, pad), dtype=np.float32)


def pack_items(item_part: np.ndarray, lanes: int) -> np.ndarray:
    """(n, h1) -> (ceil(n / lanes), h1, lanes): each block of items one contiguous read."""
    n, h1 = item_part.shape
    blocks = -(-n // lanes)
    x = _padded(item_part, blocks * lanes, axis=0)
    return np.ascontiguousarray(x.reshape(blocks, lanes, h1).transpose(0, 2, 1))


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
    if not available():
        raise RuntimeError("movierec._tower is not available on this machine")
    if out.dtype != torch.float32 or not out.is_contiguous() or out.device.type != "cpu":
        raise ValueError("out must be a contiguous float32 CPU tensor")
    lanes = lanes or LANES
    (n_users, h1), n_items, h2 = user_part.shape, item_part.shape[0], weight.shape[0]
    if out.shape != (n_users, n_items):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(n_users, n_items)}")
    h2p = -(-h2 // lanes) * lanes
    a = np.ascontiguousarray(user_part.float().numpy())
    bp = pack_items(item_part.float().numpy(), lanes)
    w2 = _padded(weight.float().numpy().T, h2p, axis=1)
    c2 = _padded(bias.float().numpy(), h2p, axis=0)
    wp = _padded(w.float().numpy(), h2p, axis=0)
    o = out.numpy()
    threads = max(1, threads or torch.get_num_threads())

    def run(u0: int, u1: int, i0: int, i1: int) -> None:
        _tower.tower2(lanes, u0, u1, i0, i1, n_items, h1, h2p, a, bp, w2, c2, wp, o)

    if n_users >= threads:  # each thread a contiguous range of users
        cuts = [n_users * t // threads for t in range(threads + 1)]
        parts = [(cuts[t], cuts[t + 1], 0, n_items) for t in range(threads)]
    else:  # few users (one request): each thread a range of item blocks
        blocks = -(-n_items // lanes)
        cuts = [min(n_items, blocks * t // threads * lanes) for t in range(threads + 1)]
        parts = [(0, n_users, cuts[t], cuts[t + 1]) for t in range(threads)]
    parts = [p for p in parts if p[0] < p[1] and p[2] < p[3]]
    if len(parts) == 1:
        run(*parts[0])
    else:
        with ThreadPoolExecutor(len(parts)) as pool:
            for f in [pool.submit(run, *p) for p in parts]:
                f.result()
    return out
