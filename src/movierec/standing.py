"""Where a model stands on a leaderboard: its difference to the best other contender on each
headline test figure, with a paired bootstrap 95% interval over the test users, and the
verdict that follows ("first" only when the interval excludes zero, else "tied with X" or
"behind X")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from movierec import metrics
from movierec.compare import Row

PAIRED_KEYS = ("sampled.hr@10", "sampled.ndcg@10", "full.hr@10", "full.ndcg@10")


@dataclass(frozen=True)
class Difference:
    """``model`` minus the best other contender on one test figure, per user, with the 95%
    paired bootstrap interval over users (figures averaged over seeds first)."""

    model: str
    other: str  # the contender with the best mean test figure among the others
    key: str  # e.g. "full.ndcg@10"
    difference: float
    low: float
    high: float

    def verdict(self) -> str:
        """ "first", "tied with X" or "behind X", and the figures: one line."""
        if self.low > 0:
            word = f"first on {self.key}: {self.difference:+.3f} vs {self.other}"
        elif self.high < 0:
            word = f"behind {self.other} on {self.key}: {self.difference:+.3f}"
        else:
            word = f"tied with {self.other} on {self.key}: {self.difference:+.3f}"
        return f"{self.model} {word} (95%: {self.low:+.3f} to {self.high:+.3f})"


def paired_difference(
    rows: Sequence[Row], model: str, key: str, *, seed: int = 0, rounds: int = 2000
) -> Difference:
    """``model`` against the best other contender of ``rows`` on test figure ``key``
    (one of ``PAIRED_KEYS``): a paired bootstrap over the test users (``metrics``).
    Every contender's per-user figures are averaged over its seeds first."""
    per_model: dict[str, list[np.ndarray]] = {}
    for r in rows:
        if key not in r.test.per_user:
            raise ValueError(f"{r.model}: no per-user {key} (evaluated without full ranking?)")
        per_model.setdefault(r.model, []).append(r.test.per_user[key])
    if model not in per_model or len(per_model) < 2:
        raise ValueError(f"paired_difference needs {model!r} and another contender in rows")
    mean = {m: np.mean(np.stack(v), axis=0) for m, v in per_model.items()}
    other = max((m for m in mean if m != model), key=lambda m: mean[m].mean())
    d, low, high = metrics.paired_bootstrap(
        mean[model], mean[other], np.random.default_rng(seed), rounds
    )
    return Difference(model, other, key, d, low, high)


def standing(rows: Sequence[Row], model: str, *, seed: int = 0) -> list[Difference]:
    """``model`` against the best other contender on each of ``PAIRED_KEYS`` (the keys
    every row has), or nothing when ``model`` has no rival in ``rows``."""
    if model not in {r.model for r in rows} or len({r.model for r in rows}) < 2:
        return []
    keys = [k for k in PAIRED_KEYS if all(k in r.test.per_user for r in rows)]
    return [paired_difference(rows, model, k, seed=seed) for k in keys]


@dataclass(frozen=True)
class ValidationChoice:
    """Which of our models wins on validation (``key``, mean over seeds): the rule the
    default model follows."""

    key: str  # a validation figure, e.g. "sampled.hr@10"
    figures: dict[str, float]  # model -> mean validation figure, best first
    default: str  # the default model now

    @property
    def winner(self) -> str:
        return next(iter(self.figures))

    def line(self) -> str:
        shown = ", ".join(f"{m} {v:.3f}" for m, v in self.figures.items())
        if self.winner == self.default:
            return f"on validation {self.key}: {shown}: the default, {self.default}, wins"
        return f"on validation {self.key}: {shown}: {self.winner} beats the default, {self.default}"


def validation_choice(
    rows: Sequence[Row], candidates: Sequence[str], default: str, key: str = "sampled.hr@10"
) -> ValidationChoice | None:
    """The ``candidates`` present in ``rows`` ranked by their mean validation ``key`` (the
    figure the training loop selects epochs on); None with fewer than two of them."""
    protocol, figure = key.split(".")
    by_model: dict[str, list[float]] = {}
    for r in rows:
        if r.model in candidates:
            by_model.setdefault(r.model, []).append(r.validation.to_dict()[protocol][figure])
    if len(by_model) < 2:
        return None
    means = {m: float(np.mean(v)) for m, v in by_model.items()}
    ranked = dict(sorted(means.items(), key=lambda kv: -kv[1]))
    return ValidationChoice(key, ranked, default)
