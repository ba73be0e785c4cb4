"""Comparisons for results that depend on the CPU's kernels, thread count or batch shape.

The same model scored two ways (the C kernel or torch; one user or a block; one process or
two; AVX2 or AVX-512; MKL's choice of GEMM for a shape) rounds differently in float32: a
dot product of n terms may move by about n units in the last place of its largest term.
Scores are therefore compared with a relative and an absolute tolerance, and rankings as
rankings: two items may swap, or one may replace the other at the cut of a top-k, only
where their scores are within that tolerance of each other. A wrong item, a wrong score
or a shifted index still fails.

``RTOL`` and ``ATOL`` suit the scores of these tests' models: sums of at most a few hundred
float32 products of magnitude up to ~10 (an error of ~1e-6), while a real bug moves a score
by far more than 1e-4.
"""

from __future__ import annotations

import numpy as np

RTOL = 1e-5
ATOL = 1e-5


def _as64(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _tol(x: np.ndarray, y: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    return atol + rtol * np.maximum(np.abs(x), np.abs(y))


def assert_scores_close(a, b, *, rtol: float = RTOL, atol: float = ATOL, msg: str = "") -> None:
    """``a`` and ``b`` (arrays or tensors, any shape) agree to float32 rounding: ``|a - b| <=
    atol + rtol * max(|a|, |b|)`` everywhere; infinities and NaNs must sit in the same
    places with the same sign."""
    x, y = _as64(a), _as64(b)
    assert x.shape == y.shape, f"{msg} shapes differ: {x.shape} vs {y.shape}"
    special = ~(np.isfinite(x) & np.isfinite(y))
    np.testing.assert_array_equal(x[special], y[special], err_msg=f"{msg} inf/nan differ")
    with np.errstate(invalid="ignore"):
        gap = np.where(special, 0.0, np.abs(x - y))
        bad = gap > _tol(x, y, rtol, atol)
    if bad.any():
        where = np.argwhere(bad)[:5].tolist()
        worst = np.unravel_index(np.argmax(np.where(bad, gap, -1)), x.shape)
        raise AssertionError(
            f"{msg} {int(bad.sum())} of {x.size} scores differ beyond rtol={rtol}, atol={atol} "
            f"(first at {where}); worst at {list(map(int, worst))}: {x[worst]!r} vs {y[worst]!r}"
        )


def assert_same_ranking(
    items_a, scores_a, items_b, scores_b, *, rtol: float = RTOL, atol: float = ATOL
) -> None:
    """Two top-k lists (B, k) (or one row (k,)), best first, ``-1`` items padding rows with
    fewer than k entries, are the same ranking up to float32 rounding.

    - padding sits in the same places (how many items a row has is counting, not rounding);
    - the j-th best scores agree (``assert_scores_close``), position by position;
    - an item in both lists at different places has scores there within twice the
      tolerance (it moved only among near-equal scores);
    - an item in one list only is in a full row and within twice the tolerance of the
      other list's last score (it was cut at the boundary by an item of the same score).
    """
    ia, ib = np.atleast_2d(np.asarray(items_a)), np.atleast_2d(np.asarray(items_b))
    sa, sb = np.atleast_2d(_as64(scores_a)), np.atleast_2d(_as64(scores_b))
    assert ia.shape == ib.shape == sa.shape == sb.shape, (ia.shape, ib.shape, sa.shape, sb.shape)
    np.testing.assert_array_equal(ia < 0, ib < 0, err_msg="rows hold different numbers of items")
    pad_a, pad_b = np.where(ia < 0, -np.inf, sa), np.where(ib < 0, -np.inf, sb)
    assert_scores_close(pad_a, pad_b, rtol=rtol, atol=atol, msg="j-th best scores:")
    for r in range(ia.shape[0]):
        n = int(np.count_nonzero(ia[r] >= 0))
        pos_a = {int(x): j for j, x in enumerate(ia[r, :n])}
        pos_b = {int(x): j for j, x in enumerate(ib[r, :n])}
        assert len(pos_a) == len(pos_b) == n, f"row {r}: an item listed twice"
        full = n == ia.shape[1]
        for x in pos_a.keys() | pos_b.keys():
            if x in pos_a and x in pos_b:
                s, t = sa[r, pos_a[x]], sb[r, pos_b[x]]
                why = f"at {pos_a[x]} and {pos_b[x]}"
            elif x in pos_a:
                s, t = sa[r, pos_a[x]], sb[r, n - 1]
                why = f"at {pos_a[x]} in the first list only"
            else:
                s, t = sb[r, pos_b[x]], sa[r, n - 1]
                why = f"at {pos_b[x]} in the second list only"
            moved = not (x in pos_a and x in pos_b and pos_a[x] == pos_b[x])
            if not moved:
                continue
            assert full or (x in pos_a and x in pos_b), f"row {r}: item {x} {why} (row not full)"
            assert abs(s - t) <= 2 * _tol(s, t, rtol, atol), (
                f"row {r}: item {x} {why}, but its score {s!r} is not tied with {t!r}"
            )


def assert_ranking_settled(
    scores,
    *,
    targets=None,
    k: int | None = None,
    excluded=None,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> None:
    """Every comparison a ranking of ``scores`` (B, n) makes is decided by more than
    float32 rounding, so any correct float32 path gives the same ranks, ties and top-k
    sets: each row's ``targets`` score is not within twice the tolerance of any other
    allowed item's, and the k-th best allowed score is not within it of the (k+1)-th.
    ``excluded`` (B, n) bool marks the items the ranking leaves out. Use it on a float64
    reference before asserting that two paths give identical metrics; a fixture that
    fails it needs another seed."""
    s = _as64(scores).copy()
    if excluded is not None:
        s[np.asarray(excluded, bool)] = np.nan
    rows = np.arange(s.shape[0])
    if targets is not None:
        tg = np.asarray(targets)
        t = s[rows, tg].copy()
        others = s.copy()
        others[rows, tg] = np.nan
        gap = np.abs(others - t[:, None])
        with np.errstate(invalid="ignore"):
            near = gap <= 2 * _tol(others, t[:, None], rtol, atol)
        assert not near.any(), f"targets within rounding of another item: {np.argwhere(near)[:5]}"
    if k is not None:
        srt = -np.sort(-s, axis=1)  # descending, NaN last
        if srt.shape[1] > k:
            a, b = srt[:, k - 1], srt[:, k]
            ok = ~np.isfinite(b) | (a - b > 2 * _tol(a, b, rtol, atol))
            assert ok.all(), f"rows whose k-th and (k+1)-th scores nearly tie: {rows[~ok][:5]}"
