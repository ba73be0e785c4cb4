"""Cold start on ml-latest-small: people the model never saw, folded in from a liked list.

    python bench/bench_coldstart.py [--seed 0] [--model history]

20% of the users are held out of training. Each held-out user is folded in from all but
their latest movie (most recent first) and their latest movie is ranked against the full
catalogue (their other movies excluded). Beside the model: popularity, and iALS (tuned
settings) folding the user in with its own ``recalculate_user``. Also times one cold-start
request of 50 liked movies through ``Recommender.for_liked`` on one thread.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import scipy.sparse as sp
import torch

from movierec.artifacts import save_run
from movierec.data import Interactions
from movierec.metrics import hit_rate, ndcg, rank_of_target, ties_of_target
from movierec.movielens import load
from movierec.prepare import prepare
from movierec.recommend import Recommender
from movierec.split import leave_last_out
from movierec.train import TrainConfig, fit


def newest_first(inter: Interactions, users: np.ndarray) -> list[np.ndarray]:
    order = np.lexsort((-inter.items, -inter.timestamps, inter.users))
    u, i = inter.users[order], inter.items[order]
    return [i[u == x] for x in users]


def full_rank(scores: np.ndarray, targets: np.ndarray, excluded: list[np.ndarray]) -> dict:
    scores = scores.astype(np.float64, copy=True)
    for row, items in enumerate(excluded):
        scores[row, items] = -np.inf
    t = scores[np.arange(len(targets)), targets]
    scores[np.arange(len(targets)), targets] = -np.inf
    ranks, ties = rank_of_target(t, scores), ties_of_target(t, scores)
    return {"hr@10": hit_rate(ranks, 10, ties), "ndcg@10": ndcg(ranks, 10, ties)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="history")
    a = p.parse_args()
    torch.set_num_threads(1)
    ds, _ = prepare(load("ml-latest-small")[0])
    inter = ds.interactions
    rng = np.random.default_rng(a.seed)
    held = np.sort(rng.permutation(inter.n_users)[: inter.n_users // 5])
    is_held = np.isin(inter.users, held)
    known = inter.subset(~is_held)
    split = leave_last_out(known)
    t0 = time.perf_counter()
    result = fit(split, TrainConfig.for_model(a.model, seed=a.seed), progress=False)
    train_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        save_run(f"{tmp}/run", result, ds, split)
        rec = Recommender.load(f"{tmp}/run")
        lists = newest_first(inter.subset(is_held), held)
        targets = np.array([x[0] for x in lists])
        liked = [x[1:] for x in lists]
        t0 = time.perf_counter()
        ours = _scores_for(rec, liked)
        fold_ms = (time.perf_counter() - t0) / len(liked) * 1e3
        big = liked[int(np.argmax([len(x) for x in liked]))][:50]
        times = []
        for _ in range(20):
            t = time.perf_counter()
            rec.for_liked(big, 10)
            times.append(time.perf_counter() - t)
    counts = np.bincount(known.items, minlength=inter.n_items).astype(np.float64)
    pop = np.tile(counts, (len(held), 1))
    ials = _ials_fold_in(known, held, liked, a.seed)
    print(f"{len(held)} held-out users, model {a.model} trained in {train_s:.0f} s")
    for name, scores in (("popularity", pop), ("iALS recalculate_user", ials), (a.model, ours)):
        m = full_rank(scores, targets, liked)
        print(f"{name:>24}: full HR@10 {m['hr@10']:.4f}  NDCG@10 {m['ndcg@10']:.4f}")
    print(
        f"fold-in + score: {fold_ms:.1f} ms per user (batch of {len(liked)}); for_liked with "
        f"{len(big)} liked movies, top 10: median {np.median(times) * 1e3:.1f} ms, "
        f"max {np.max(times) * 1e3:.1f} ms (1 thread)"
    )


def _scores_for(rec: Recommender, liked: list[np.ndarray]) -> np.ndarray:
    """Full score rows of the cold-start model (no exclusion; full_rank excludes)."""
    from movierec.foldin import fold_in, score_folded
    from movierec.history import HistoryModel

    model = rec.model
    if isinstance(model, HistoryModel):
        width = max(len(x) for x in liked)
        hist = np.full((len(liked), width), model.n_items, dtype=np.int64)
        for row, items in enumerate(liked):
            hist[row, : len(items)] = items
        return model.score_items_for_history(torch.as_tensor(hist)).numpy()
    with torch.inference_mode(False):
        return np.stack([score_folded(model, fold_in(model, x, rec.fold)) for x in liked])


def _ials_fold_in(known: Interactions, held: np.ndarray, liked: list[np.ndarray], seed: int):
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(
        factors=32, regularization=0.1, alpha=16.0, iterations=15, random_state=seed
    )
    model.fit(known.to_csr(), show_progress=False)
    rows = []
    for user, items in zip(held, liked, strict=True):
        m = sp.csr_matrix(
            (np.ones(len(items)), (np.zeros(len(items)), items)), shape=(1, known.n_items)
        )
        rows.append(np.asarray(model.recalculate_user(int(user), m)).ravel())
    return np.stack(rows) @ np.asarray(model.item_factors).T


if __name__ == "__main__":
    main()
