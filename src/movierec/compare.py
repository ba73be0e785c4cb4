"""The leaderboard: every contender on one split, one rule, the same candidates.

The rule, identical for every model, ours included:

- fit on ``split.train`` only and choose settings (or epochs) on validation, where every
  user's input is formed from train (``models.inputs_for(split, "validation")``);
- at test, every contender scores users whose input is formed from train + validation
  (``models.inputs_for(split, "test")``). A model that can take in a user's movies keeps
  what it learned from train: a history or sequence model reads the validation movie as
  its latest; EASE multiplies the user's row, validation movie included, by the weights
  fitted on train; iALS solves each user's vector again with the item factors fixed (the
  exact ALS user step); popularity counts train + validation. A model whose users are
  learned rows with no exact user step (BPR; the id models: tutorial, GMF, MLP, NeuMF) is
  fit again on train + validation with the chosen settings, epoch count and seed.

A *contender* is a function ``(split, seed) -> Fitted`` that does its own selection on
validation and never looks at ``split.test``. ``Fitted.scorer`` is the chosen model as
validation saw it, ``Fitted.with_inputs`` the same model given other inputs; only
``leaderboard`` says which inputs test gets, so no contender sees more or less than
another. The peers in ``movierec.baselines`` become contenders through ``peer()``, our
models through ``trained()`` (or ``from_training`` for a model trained elsewhere), and any
other through ``leaderboard(..., extra={"name": contender})``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from movierec import baselines
from movierec.data import Interactions
from movierec.evaluate import Metrics, Scorer, evaluate
from movierec.models import TorchScorer, inputs_for, scorer_for
from movierec.split import Split
from movierec.training.config import TrainConfig
from movierec.training.fit import fit
from movierec.training.result import TrainResult

DEFAULT_PEERS: tuple[str, ...] = ("popularity", "bpr", "ials", "ease")

# Smaller grids for the main job (`movierec run`), which must finish in minutes on a
# laptop: each keeps the settings the full grids chose on ml-latest-small validation
# (bench/RESULTS.md) and their neighbours. `movierec compare` tunes over the full grids.
QUICK_GRIDS: dict[str, tuple[dict[str, Any], ...]] = {
    "bpr": baselines.grid(
        factors=[64], learning_rate=[0.05], regularization=[0.01, 0.03], iterations=[300]
    ),
    "ials": baselines.grid(factors=[32, 64], regularization=[0.1, 1.0], alpha=[4.0, 16.0]),
    "ease": baselines.grid(lam=[200.0, 500.0, 1000.0]),
}


@dataclass(frozen=True)
class Fitted:
    """A contender's chosen model, how it takes in other inputs, and how it got there."""

    scorer: Scorer  # the chosen model, every user's input formed from train (validation)
    with_inputs: Callable[[Interactions], Scorer]  # the same model, inputs from those given
    params: dict[str, Any]  # the settings chosen on validation (JSON-friendly values)
    train_seconds: float  # fitting the chosen settings once (tuning excluded)
    tune_seconds: float = 0.0  # the whole selection on validation, fits included


Contender = Callable[[Split, int], Fitted]  # (split, seed) -> Fitted; must not read split.test


@dataclass(frozen=True)
class Row:
    """One contender under one seed: chosen settings, validation and test figures."""

    model: str
    seed: int
    params: dict[str, Any]
    train_seconds: float
    tune_seconds: float
    validation: Metrics
    test: Metrics

    def to_dict(self) -> dict[str, Any]:
        """Test figures first (the JSON shape of ``movierec compare --json``)."""
        return {
            **self.test.to_dict(),
            "train_seconds": self.train_seconds,
            "tune_seconds": self.tune_seconds,
            "params": dict(self.params),
            "seed": self.seed,
            "validation": self.validation.to_dict(),
        }


def peer(name: str, grid: Sequence[Mapping[str, Any]] | None = None) -> Contender:
    """Peer ``name`` as a contender: tuned on validation over its grid (or ``grid``).

    The returned function caches the fits of deterministic peers (popularity, EASE), so
    calling it for several seeds on the same split fits each grid point once.
    """
    cache: baselines.FitCache = {}
    cached_for: list[Split] = []  # the split the cache belongs to (held, compared by identity)

    def fit_tuned(split: Split, seed: int) -> Fitted:
        if not cached_for or cached_for[0] is not split:
            cache.clear()
            cached_for[:] = [split]
        t0 = time.perf_counter()
        tuned = baselines.tune_peer(name, split, grid, seed=seed, cache=cache)
        seconds = time.perf_counter() - t0
        return Fitted(
            tuned.scorer,
            lambda inter: tuned.with_inputs(inter.to_csr()),
            tuned.params,
            tuned.fit_seconds,
            seconds,
        )

    return fit_tuned


def trained(model: str) -> Contender:
    """One of our models (``training.config.PRESETS``) as a contender: its preset, trained
    on train, epoch chosen on validation (``from_training``)."""

    def fit_model(split: Split, seed: int) -> Fitted:
        result = fit(split, TrainConfig.for_model(model, seed=seed), progress=False)
        return from_training(result, split)

    return fit_model


def from_training(result: TrainResult, split: Split) -> Fitted:
    """A model trained on ``split`` (``training.fit``'s result) as a contender's outcome:
    validation scored with every user's input formed from train (``models.scorer_for``),
    other inputs through ``trained_with_inputs``."""
    config = result.config
    params = {"epochs": result.best_epoch, "factors": config.factors, "lr": config.lr}
    validation = scorer_for(result.model, split, "validation")
    return Fitted(validation, partial(trained_with_inputs, result), params, result.seconds)


def trained_with_inputs(result: TrainResult, inter: Interactions) -> TorchScorer:
    """``result``'s model scoring users whose input is formed from ``inter``: a history or
    sequence model reads it (``with_inputs``, parameters shared); an id model's users are
    rows learned from train, so it is trained again on ``inter`` (``retrain``)."""
    model = result.model
    if model.user_input == "id":
        model = retrain(result, inter).model
    return TorchScorer(model.with_inputs(inter), next(iter(model.parameters())).device)


def retrain(result: TrainResult, inter: Interactions) -> TrainResult:
    """``result``'s model trained afresh on ``inter`` with the same settings and seed for
    its chosen number of epochs: nothing is held out, so nothing is selected (the last
    epoch is kept)."""
    nothing = inter.subset(np.zeros(0, dtype=np.int64))
    config = replace(result.config, epochs=result.best_epoch, patience=None)
    return fit(Split(inter, nothing, nothing), config, progress=False)


def leaderboard(
    split: Split,
    models: Sequence[str] = DEFAULT_PEERS,
    *,
    seeds: Sequence[int] = (0,),
    extra: Mapping[str, Contender] | None = None,
    grids: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    full: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Tune and evaluate every contender: ``models`` (peer names) then ``extra``.

    For each seed, a contender is fit and selected with that seed (model initialisation and
    validation candidates), then scored on validation and test with candidates from the same
    seed, so every model meets the same candidates; test users' inputs are formed from train
    + validation for every contender (the module's rule). Rows come model by model, seed by
    seed.
    """
    grids = grids or {}
    contenders: dict[str, Contender] = {name: peer(name, grids.get(name)) for name in models}
    for name, fn in (extra or {}).items():
        if name in contenders:
            raise ValueError(f"contender {name!r} is listed twice")
        contenders[name] = fn
    if not seeds:
        raise ValueError("leaderboard needs at least one seed")
    rows: list[Row] = []
    for name, contender in contenders.items():
        for seed in seeds:
            if progress is not None:
                progress(f"{name} (seed {seed})")
            fitted = contender(split, seed)
            validation = evaluate(fitted.scorer, split, seed=seed, on="validation", full=full)
            at_test = fitted.with_inputs(inputs_for(split, "test"))  # the one input rule
            test = evaluate(at_test, split, seed=seed, on="test", full=full)
            rows.append(
                Row(
                    model=name,
                    seed=seed,
                    params=dict(fitted.params),
                    train_seconds=fitted.train_seconds,
                    tune_seconds=fitted.tune_seconds,
                    validation=validation,
                    test=test,
                )
            )
            del fitted, at_test
    return rows


def to_json(rows: Sequence[Row]) -> dict[str, dict[str, Any]]:
    """``{model: row.to_dict()}``, the shape ``compare --json`` prints (one seed per model)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.model in out:
            raise ValueError(f"{row.model!r} appears under several seeds; use summarize()")
        out[row.model] = row.to_dict()
    return out


def summarize(rows: Sequence[Row]) -> dict[str, dict[str, Any]]:
    """Mean and population std over seeds per model: ``{model: {"test.sampled.hr@10":
    (mean, std), ..., "seeds": n, "params": [per-seed settings]}}``."""
    by_model: dict[str, list[Row]] = {}
    for row in rows:
        by_model.setdefault(row.model, []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for model, group in by_model.items():
        flat = [
            _flatten({"validation": r.validation.to_dict(), "test": r.test.to_dict()})
            for r in group
        ]
        flat = [{**f, "train_seconds": r.train_seconds} for f, r in zip(flat, group, strict=True)]
        stats: dict[str, Any] = {}
        for key in flat[0]:
            if key.endswith(".users"):
                continue
            vals = np.array([f[key] for f in flat], dtype=np.float64)
            stats[key] = (float(vals.mean()), float(vals.std()))
        stats["seeds"] = len(group)
        stats["params"] = [r.params for r in group]
        out[model] = stats
    return out


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif v is not None:
            out[key] = float(v)
    return out
