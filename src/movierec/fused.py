"""CPU kernels in C (``movierec._tower``) for what torch does slowly at NCF's sizes.

- ``tower2_into``: whole-catalogue scores of a two-layer MLP tower. Torch writes each
  (user, item) pair's first activation to memory and reads it back for a matrix product;
  the kernel keeps a tile of items' activations in L1 and finishes their scores in
  registers (~2x the torch path, bench/RESULTS.md).
- ``QuantizedTower`` / ``tower2q_into``: the same on 16-bit integers, with a proven bound on
  each score's error; ``screen`` then settles rows of such scores against thresholds, so
  full-ranking evaluation scores exactly only the items near the target or the top-k.
- ``embedding``: embedding rows and their dense gradients for training.

The extension is built at install time where a C compiler exists. Without it, off x86-64
(no AVX2), or for a first layer wider than ``MAX_H1``, ``available()`` is False and callers
keep the torch path, which gives the same scores up to float32 rounding (and
``rows_available()`` is False: ``nn.Embedding``'s own path). The loops release the GIL, so
threads split the work.

``MOVIEREC_NO_C=1`` (read here, once, at import; any value but empty or ``0`` counts)
leaves the extension unloaded, exactly as if it had not been built, so every caller takes
the torch path. ``.ci/run`` runs the scoring tests a second time so. Scores from the two
paths, from different thread counts or batch shapes, and from different CPUs differ in
float32 rounding: tests compare them with tolerances (``tests/_close.py``).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

NO_C_ENV = "MOVIEREC_NO_C"  # set (not "0"): leave the extension unloaded
DISABLED = os.environ.get(NO_C_ENV, "").strip() not in ("", "0")

try:
    if DISABLED:
        raise ImportError(f"{NO_C_ENV} is set")
    from movierec import _tower
except ImportError:  # not compiled here, or disabled: the torch path serves
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
    _check_out(out, user_part.shape[0], item_part.shape[0])
    lanes = lanes or LANES
    (n_users, h1), n_items, h2 = user_part.shape, item_part.shape[0], weight.shape[0]
    h1p, h2p = -(-h1 // lanes) * lanes, -(-h2 // (2 * lanes)) * 2 * lanes
    a = _padded(user_part.float().numpy(), h1p, axis=1)
    b = _padded(item_part.float().numpy(), h1p, axis=1)
    w2 = _padded(_padded(weight.float().numpy().T, h2p, axis=1), h1p, axis=0)
    c2 = _padded(bias.float().numpy(), h2p, axis=0)
    wp = _padded(w.float().numpy(), h2p, axis=0)
    o = out.numpy()
    _in_threads(
        n_users,
        n_items,
        threads,
        lambda *r: _tower.tower2(lanes, *r, n_items, h1p, h2p, a, b, w2, c2, wp, o),
    )
    return out


def _need_kernel(what: str) -> None:
    if _tower is None:
        why = f"{NO_C_ENV} is set" if DISABLED else "movierec._tower is not built here"
        raise RuntimeError(f"{what} needs the C kernels ({why}); check available() first")


def _check_out(out: torch.Tensor, n_users: int, n_items: int) -> None:
    if out.dtype != torch.float32 or not out.is_contiguous() or out.device.type != "cpu":
        raise ValueError("out must be a contiguous float32 CPU tensor")
    if out.shape != (n_users, n_items):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {(n_users, n_items)}")


def _in_threads(n_users: int, n_items: int, threads: int | None, run) -> None:
    """``run(u0, u1, i0, i1)`` over disjoint blocks, one per thread: ranges of users, or of
    items when there are fewer users than threads (one request)."""
    threads = max(1, threads or torch.get_num_threads())
    if n_users >= threads:
        cuts = [n_users * t // threads for t in range(threads + 1)]
        parts = [(cuts[t], cuts[t + 1], 0, n_items) for t in range(threads)]
    else:
        cuts = [n_items * t // threads for t in range(threads + 1)]
        parts = [(0, n_users, cuts[t], cuts[t + 1]) for t in range(threads)]
    parts = [p for p in parts if p[0] < p[1] and p[2] < p[3]]
    if len(parts) == 1:
        run(*parts[0])
    elif parts:
        with ThreadPoolExecutor(len(parts)) as pool:
            for f in [pool.submit(run, *p) for p in parts]:
                f.result()


Q_H1 = 4095  # first-layer halves quantize into [-Q_H1, Q_H1]; their sum stays in 16 bits


def fp32_slack(terms: int) -> float:
    """Relative allowance for float32 rounding in a sum of ``terms`` products, computed
    twice (once approximately, once exactly) in any order: ``terms * 2^-24`` is the worst
    case of one; this leaves twice that again, plus room for the final additions."""
    return 4 * (terms + 16) * 2.0**-24


@dataclass(frozen=True)
class QuantizedTower:
    """A two-layer tower on 16-bit integers, its items quantized once for many user blocks.

    The first layer's halves share one scale per unit (``unit_scale``: a user half within
    ``user_limit`` fits); ``b`` (n, h1p) is the item half, ``w2`` (h1p / 2, h2p, 2) the
    second layer on one scale per output unit (``scale``), units k and k+1 side by side;
    ``c2`` and ``w`` as in ``tower2_into``, zero-padded. Every score is within
    ``err_users[u] + err_items[i]`` of the exact one (float32 rounding of either included);
    ``quantize_users`` gives the user half and ``err_users``.
    """

    lanes: int
    unit_scale: np.ndarray  # (h1,) float64
    user_limit: np.ndarray  # (h1,) largest |user half| the scale takes
    b: np.ndarray
    w2: np.ndarray
    scale: np.ndarray
    c2: np.ndarray
    w: np.ndarray
    err_items: np.ndarray  # (n,) float64
    err_weights: tuple[np.ndarray, np.ndarray, np.ndarray]  # |W s|, its rounding, |w|
    err_const: float  # the user term's share of float32 rounding: from c2
    slack: float  # fp32_slack of this tower's sums


def quantize_tower2(
    user_limit: np.ndarray,
    item_part: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    w: np.ndarray,
    lanes: int,
) -> QuantizedTower:
    """Quantize a tower (``tower2_into``'s item-side arguments, as arrays) for user halves
    up to ``user_limit`` per unit in absolute value, and bound its error.

    With ``x = s * r`` and ``q = round(r)`` per first-layer unit and ``W s = t * Q + d`` per
    output unit, the second layer's pre-activation moves by at most
    ``sum_k |W s|_jk (|r_a - q_a| + |r_b - q_b|)_k + sum_k d_jk (relu(q_a) + relu(q_b))_k``,
    a user term plus an item term; ReLU keeps the bound and ``|w|`` carries it to the score.
    """
    hi = np.asarray(item_part, np.float64)
    wt, c, v = (np.asarray(x, np.float64) for x in (weight, bias, w))
    (h2, h1), per = wt.shape, 2 * lanes
    h1p, h2p = -(-h1 // per) * per, -(-h2 // per) * per
    top = np.maximum(np.asarray(user_limit, np.float64), np.abs(hi).max(0, initial=0.0))
    s = np.where(top > 0, top, 1.0) / Q_H1
    rb = hi / s
    qb = np.rint(rb)
    ws = wt * s
    q_w = min(2047, (2**31 - 1) // (h1 * 2 * Q_H1))  # |sum_k q_w * 2 Q_H1| < 2^31
    t = np.abs(ws).max(1) / q_w
    t = np.where(t > 0, t, 1.0)
    qw = np.rint(ws / t[:, None])
    full = np.zeros((h1p, h2p))
    full[:h1, :h2] = qw.T
    weights = (np.abs(ws), np.abs(ws - qw * t[:, None]), np.abs(v))
    slack = fp32_slack(h1 + h2)
    return QuantizedTower(
        lanes=lanes,
        unit_scale=s,
        user_limit=top,
        b=_padded(qb, h1p, 1).astype(np.int16),
        w2=np.ascontiguousarray(full.reshape(h1p // 2, 2, h2p).transpose(0, 2, 1), np.int16),
        scale=_padded(t, h2p, 0),
        c2=_padded(c, h2p, 0),
        w=_padded(v, h2p, 0),
        err_items=_err(rb, qb, weights, slack),
        err_weights=weights,
        err_const=slack * float(weights[2] @ np.abs(c)),
        slack=slack,
    )


def _err(r: np.ndarray, q: np.ndarray, weights: tuple[np.ndarray, ...], slack: float) -> np.ndarray:
    """One side's term of ``QuantizedTower``'s bound, float32 rounding allowance included:
    ``slack`` times what the side contributes to the sums' magnitudes."""
    aw, dw, av = weights
    quant = (np.abs(r - q) @ aw.T + np.maximum(q, 0) @ dw.T) @ av
    return quant + slack * (((np.abs(r) + 1) @ aw.T) @ av)


def quantize_users(q: QuantizedTower, user_part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The user half (B, h1) on ``q``'s scale: (int16 (B, h1p), err_users (B,))."""
    hu = np.asarray(user_part, np.float64)
    if not (np.abs(hu) <= q.user_limit).all():
        raise ValueError("a user half exceeds the range the tower was quantized for")
    ra = hu / q.unit_scale
    qa = np.rint(ra)
    err = _err(ra, qa, q.err_weights, q.slack) + q.err_const
    return _padded(qa, q.b.shape[1], 1).astype(np.int16), err


def tower2q_into(
    out: torch.Tensor,
    q: QuantizedTower,
    user_part: torch.Tensor,
    threads: int | None = None,
    vnni: bool = True,
) -> np.ndarray:
    """``tower2_into`` on 16-bit integers (~1.4x faster here): approximate scores added into
    ``out`` (B, n), each within ``err_users[u] + q.err_items[i]`` of the exact one; returns
    ``err_users``. Rankings settle every pair farther than that from a threshold and score
    only the rest exactly. ``vnni=False`` keeps AVX-512 CPUs off VNNI (for tests)."""
    _need_kernel("tower2q_into")
    _check_out(out, user_part.shape[0], q.b.shape[0])
    a, err = quantize_users(q, user_part.detach().float().cpu().numpy())
    (n_users, h1p), n_items, h2p = a.shape, q.b.shape[0], q.scale.shape[0]
    o = out.numpy()
    _in_threads(
        n_users,
        n_items,
        threads,
        lambda *r: _tower.tower2q(
            q.lanes, *r, n_items, h1p, h2p, a, q.b, q.w2, q.scale, q.c2, q.w, o, vnni
        ),
    )
    return err


def rows_available(weight: torch.Tensor) -> bool:
    """Whether ``embedding`` runs its kernels for this table."""
    return (
        _tower is not None
        and weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and weight.dim() == 2
        and weight.is_contiguous()
    )


class _Rows(torch.autograd.Function):
    """Embedding lookup whose backward adds rows into a dense gradient in one C loop."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        flat = idx.reshape(-1).to(torch.int64).contiguous()
        out = weight.new_empty((flat.numel(), weight.shape[1]))
        _tower.rows(weight.detach().numpy(), *weight.shape, flat.numpy(), out.numpy())
        ctx.save_for_backward(flat)
        ctx.n_rows = weight.shape[0]
        return out.view(*idx.shape, weight.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (flat,) = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1]).contiguous()
        grad_weight = g.new_zeros((ctx.n_rows, g.shape[1]))
        _tower.add_rows(grad_weight.numpy(), *grad_weight.shape, flat.numpy(), g.numpy())
        return grad_weight, None


def embedding(weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``F.embedding(idx, weight)`` with a dense gradient, on a CPU float32 table: torch's
    lookup and above all its dense embedding backward cost ~10x a plain loop at NCF's
    sizes (bench/RESULTS.md). Rows of a repeated index add up in index order."""
    if not rows_available(weight):
        raise RuntimeError("no row kernels for this table")
    return _Rows.apply(weight, idx)


@dataclass(frozen=True)
class Screened:
    """Rows of approximate scores settled against per-row thresholds (``screen``)."""

    below: np.ndarray  # (B,) int64: items under the row's lower threshold
    band: np.ndarray  # flat row * n + item, int64: items between the thresholds
    candidates: np.ndarray  # flat row * n + item: items that may be in the exact top-k


def screen(
    s: np.ndarray,
    err_items: np.ndarray,
    t: np.ndarray,
    err_users: np.ndarray,
    targets: np.ndarray,
    k: int,
    threads: int | None = None,
) -> Screened:
    """One pass in C over each row of ``s`` (B, n) float32, approximate scores each within
    ``err_users[u] + err_items[i]`` of the exact one: counts the items surely below the
    exact target score ``t[u]``, lists those that may not be (the band) and those that may
    be in the exact top-``k``. ``targets`` (B,) are left out of the count and the band."""
    _need_kernel("screen")
    b, n = s.shape
    ei = np.ascontiguousarray(err_items, np.float32)
    t, eu = (np.ascontiguousarray(x, np.float32) for x in (t, err_users))
    tg = np.ascontiguousarray(targets, np.int64)
    below = np.zeros(b, dtype=np.int64)
    parts: dict[int, tuple[np.ndarray, np.ndarray]] = {0: (np.zeros(0, np.int64),) * 2}

    def run(r0: int, r1: int, _i0: int, _i1: int) -> None:
        cap = 128 * (r1 - r0)
        while True:
            band, cand = np.empty(cap, np.int64), np.empty(cap, np.int64)
            nb, nc = _tower.screen(s, n, ei, t, eu, tg, k, r0, r1, band, cand, below)
            if max(nb, nc) <= cap:
                parts[r0] = band[:nb], cand[:nc]
                return
            cap = max(nb, nc)

    if b:
        _in_threads(b, n, min(b, threads or torch.get_num_threads()), run)
    keys = sorted(parts)
    return Screened(
        below,
        np.concatenate([parts[r][0] for r in keys]),
        np.concatenate([parts[r][1] for r in keys]),
    )
