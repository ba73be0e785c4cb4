"""Peers for the neural models, in the same harness: most-popular, BPR, iALS, EASE.

Each peer is fit on a binary user x item CSR matrix of *training* interactions and returns
a ``Scorer``. One rule for every model, ours included: fit on train only, choose settings
on validation (sampled HR@10), report test with every user's input formed from train +
validation (``Tuned.with_inputs``; ``movierec.compare`` states the rule). ``tune`` runs
that selection over a small, documented grid per peer; ``PEERS`` lists the peers, their
defaults, their grids and how each takes in new inputs.

Modules: ``scorers`` (the fitted models), ``fitting`` (one ``fit_*`` per peer), ``registry``
(``PEERS``, grids, ``tune``).
"""

from movierec.baselines.fitting import (
    EASE_MAX_ITEMS,
    binary_csr,
    default_threads,
    fit_bpr,
    fit_ease,
    fit_ials,
    fit_popularity,
)
from movierec.baselines.registry import (
    PEERS,
    FitCache,
    FitFn,
    Peer,
    Tuned,
    fit_peer,
    get_peer,
    grid,
    tune,
    tune_peer,
)
from movierec.baselines.scorers import ALS, EASE, DotProduct, EASEDual, Popularity, als_user_step

__all__ = [
    "ALS",
    "PEERS",
    "DotProduct",
    "EASE",
    "EASEDual",
    "EASE_MAX_ITEMS",
    "FitCache",
    "FitFn",
    "Peer",
    "Popularity",
    "Tuned",
    "als_user_step",
    "binary_csr",
    "default_threads",
    "fit_bpr",
    "fit_ease",
    "fit_ials",
    "fit_peer",
    "fit_popularity",
    "get_peer",
    "grid",
    "tune",
    "tune_peer",
]
