"""The peers, their defaults and tuning grids; tuning on validation; the chosen model with
other inputs (``Tuned.with_inputs``: train + validation at test)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import scipy.sparse as sp

from movierec.baselines.fitting import binary_csr, fit_bpr, fit_ease, fit_ials, fit_popularity
from movierec.evaluate import Scorer, evaluate_sampled, holdout
from movierec.split import Split


def grid(**axes: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """Cartesian product of named axes, in order: ``grid(a=[1, 2], b=[3])``."""
    names = list(axes)
    return tuple(dict(zip(names, vals, strict=True)) for vals in itertools.product(*axes.values()))


FitFn = Callable[..., Scorer]  # fit(train_csr, *, seed, **params) -> Scorer


@dataclass(frozen=True)
class Peer:
    """A peer model: how to fit it, its defaults, its tuning grid, whether ``seed`` matters,
    how it takes in more of a user's movies."""

    name: str
    fit: FitFn
    defaults: Mapping[str, Any]
    grid: tuple[dict[str, Any], ...]
    seeded: bool = True  # False: the fit is deterministic, so one fit serves every seed
    # True: no exact user-side step, so new inputs mean fitting again on them with the chosen
    # settings and seed; False: the scorer's own ``with_inputs`` (what it learned stays)
    refit: bool = False


# Tuning budget: at most 36 fits per peer on validation, each grid spanning the peer's usual
# operating range on MovieLens-sized data (BPR: 18, as each 300-iteration fit costs about ten
# iALS fits; on ml-latest-small validation 300 iterations beat 100 at every learning rate, and
# regularisation 0.001 and 0.1 lost to 0.01). Selection: validation sampled HR@10, ties broken
# by validation NDCG@10, then by grid order.
PEERS: dict[str, Peer] = {
    "popularity": Peer("popularity", fit_popularity, {}, ({},), seeded=False),
    "bpr": Peer(
        "bpr",
        fit_bpr,
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
        grid(
            factors=[32, 64, 128],
            learning_rate=[0.01, 0.05],
            regularization=[0.003, 0.01, 0.03],
            iterations=[300],
        ),
        refit=True,  # implicit's BPR has no user-only step; an SGD fold-in would bring
        # settings of its own, and validation, which holds the movie folded in, cannot pick them
    ),
    "ials": Peer(
        "ials",
        fit_ials,
        {"factors": 64, "regularization": 0.05, "alpha": 2.0, "iterations": 15},
        grid(factors=[32, 64, 128], regularization=[0.01, 0.1, 1.0], alpha=[1.0, 4.0, 16.0, 40.0]),
    ),
    "ease": Peer(
        "ease",
        fit_ease,
        {"lam": 500.0},
        grid(lam=[50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]),
        seeded=False,
    ),
}


def fit_peer(
    name: str, train: sp.spmatrix, params: Mapping[str, Any] | None = None, *, seed: int = 0
) -> Scorer:
    """Fit peer ``name`` on ``train`` with its defaults overridden by ``params``."""
    peer = get_peer(name)
    return peer.fit(train, seed=seed, **{**peer.defaults, **(params or {})})


@dataclass(frozen=True)
class Tuned:
    """The outcome of ``tune_peer``: chosen settings, the model fit with them, the table."""

    name: str  # the peer
    params: dict[str, Any]
    scorer: Scorer  # fit on train: users' inputs are their training rows
    fit_seconds: float  # time to fit the chosen settings once
    table: list[dict[str, Any]]  # one row per grid point: settings, hr@10, ndcg@10, fit_seconds
    seed: int  # the model seed of the fit

    def with_inputs(self, rows: sp.spmatrix) -> Scorer:
        """The chosen model scoring users whose input is their row of ``rows`` (users x
        items; at test, train + validation): the scorer's own ``with_inputs`` (EASE: the
        rows times the weights fitted on train; iALS: the exact user step against the item
        factors fitted on train; popularity: counts of ``rows``), or for a ``refit`` peer
        (BPR) a fit on ``rows`` with the chosen settings and seed."""
        peer = get_peer(self.name)
        if peer.refit:
            return peer.fit(rows, seed=self.seed, **self.params)
        return self.scorer.with_inputs(binary_csr(rows))


FitCache = dict[tuple, tuple[Scorer, float]]


def tune_peer(
    name: str,
    split: Split,
    grid: Sequence[Mapping[str, Any]] | None = None,
    *,
    seed: int = 0,
    cache: FitCache | None = None,
) -> Tuned:
    """Fit ``name`` on train for every grid point; keep the best on validation sampled HR@10.

    Every grid point meets the same validation candidates (drawn from ``seed``) and the same
    model seed. ``cache`` (any dict, reused across calls on the same split) keeps the fits
    of deterministic peers, so tuning them under several seeds fits each grid point once.
    """
    peer = get_peer(name)
    points = list(peer.grid if grid is None else grid)
    if not points:
        raise ValueError(f"empty tuning grid for {name!r}")
    h = holdout(split, part="validation", seed=seed)
    train = split.train.to_csr()
    table: list[dict[str, Any]] = []
    chosen: Tuned | None = None
    best_key = (-1.0, -1.0)
    for point in points:
        params = {**peer.defaults, **point}
        key = (name, tuple(sorted(params.items())), seed if peer.seeded else None)
        if cache is not None and key in cache:
            scorer, seconds = cache[key]
        else:
            t0 = time.perf_counter()
            scorer = peer.fit(train, seed=seed, **params)
            seconds = time.perf_counter() - t0
            if cache is not None and not peer.seeded:
                cache[key] = (scorer, seconds)
        m = evaluate_sampled(scorer, h.users, h.targets, h.candidates, k_list=(10,))
        row = {**params, "hr@10": m["hr@10"], "ndcg@10": m["ndcg@10"], "fit_seconds": seconds}
        table.append(row)
        if chosen is None or (m["hr@10"], m["ndcg@10"]) > best_key:
            best_key = (m["hr@10"], m["ndcg@10"])
            chosen = Tuned(name, params, scorer, seconds, table, seed)
        del scorer
    if chosen is None:  # unreachable: points is non-empty
        raise RuntimeError("tuning selected nothing")
    return chosen


def tune(
    name: str, split: Split, grid: Sequence[Mapping[str, Any]] | None = None, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Best settings for peer ``name`` on validation sampled HR@10, and the whole table."""
    t = tune_peer(name, split, grid, seed=seed)
    return t.params, t.table


def get_peer(name: str) -> Peer:
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted(PEERS)}")
    return PEERS[name]
