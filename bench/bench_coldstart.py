"""Cold start on ml-latest-small: people the model never saw, folded in from a liked list.

    python bench/bench_coldstart.py [--seed 0] [--model history]
    python bench/bench_coldstart.py --worst-request [--data DIR] [--runs 7]

20% of the users are held out of training. Each held-out user is folded in from all but
their latest movie (most recent first) and their latest movie is ranked against the full
catalogue (their other movies excluded). Beside the model: popularity, and iALS (tuned
settings) folding the user in with its own ``recalculate_user``. Also times one cold-start
request of 50 liked movies through ``Recommender.for_liked`` on one thread.

``--worst-request`` instead times the costliest cold-start request the API admits: 100
liked titles (``service.MAX_LIKED``) that name no movie exactly, so each one gets closest
matches (``TitleIndex.find(entry, limit=5)``, as ``service`` asks), through the real app
(``POST /v1/recommendations`` answering 404, in process) over the catalogue of ``--data``
(ml-latest-small) and over a synthetic one of ML-25M's size (62,423 titles recombined
from the real ones). Entry kinds: ``typo`` (a real title with one letter changed, as in
issue 12), ``short`` (3 letters), ``long`` (300 characters of common title words).
Server wall and CPU time per request: min / median / max over ``--runs``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

from movierec.artifacts import save_run
from movierec.data import Catalog, IdMap, Interactions
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
    p.add_argument("--worst-request", action="store_true", help="time only the worst request")
    p.add_argument("--data", default="ml-latest-small", help="catalogue for --worst-request")
    p.add_argument("--runs", type=int, default=7, help="repetitions for --worst-request")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.worst_request:
        worst_request(a.data, a.runs, a.seed)
        return
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
    return np.stack([rec.model.score_new_user(torch.as_tensor(x), rec.fold).numpy() for x in liked])


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


ML_25M_TITLES = 62_423


class _TitlesOnly:
    """What ``service.create_app`` reads of a ``Recommender`` to answer a cold-start request
    that names no movie: the catalogue and its ``TitleIndex`` (no model is reached)."""

    def __init__(self, catalog: Catalog, popularity: np.ndarray) -> None:
        from movierec.titles import TitleIndex

        self.catalog, self.items = catalog, IdMap(catalog.movie_ids)
        self.users = IdMap(np.zeros(0, dtype=np.int64))
        self.titles = TitleIndex(catalog, self.items, popularity)

    def find_movie(self, query: str | int, limit: int = 10):
        return self.titles.find(query, limit)


def synthetic_catalog(real: Catalog, n: int, rng: np.random.Generator) -> Catalog:
    """``n`` distinct titles: the real ones, then first half of one + second half of another."""
    titles = [str(t) for t in real.titles]
    seen = set(titles)
    while len(titles) < n:
        a, b = (titles[i].split() for i in rng.integers(0, len(real.titles), 2))
        t = " ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :])
        if t not in seen:
            seen.add(t)
            titles.append(t)
    return Catalog(
        np.arange(1, n + 1, dtype=np.int64),
        np.array(titles, dtype=object),
        rng.integers(1920, 2024, n).astype(np.int16),
        np.full(n, "Drama", dtype=object),
    )


def worst_entries(catalog: Catalog, kind: str, rng: np.random.Generator) -> list[str]:
    """100 liked entries of ``kind`` that name no title of ``catalog`` exactly."""
    from movierec.service import MAX_LIKED, MAX_TITLE_CHARS
    from movierec.titles import normalise

    titles = [str(t) for t in catalog.titles]
    keys = {normalise(t) for t in titles}
    words = [w for t in titles for w in t.split()]
    out: list[str] = []
    while len(out) < MAX_LIKED:
        if kind == "typo":
            t = titles[int(rng.integers(len(titles)))]
            i = int(rng.integers(len(t)))
            entry = t[:i] + "q" + t[i + 1 :]
        elif kind == "short":
            entry = "".join(rng.choice(list("aeiourstln"), 3))
        else:
            entry = " ".join(rng.choice(words, 80))[:MAX_TITLE_CHARS].strip()
        if normalise(entry) not in keys:
            out.append(entry)
    return out


def _timed(call: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    wall, cpu = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return wall, cpu


def worst_request(data: str, runs: int, seed: int) -> None:
    from fastapi.testclient import TestClient

    from movierec.service import create_app, freeze_heap

    rng = np.random.default_rng(seed)
    ds, _ = prepare(load(data)[0])
    popularity = np.bincount(ds.interactions.items, minlength=len(ds.catalog))
    zipf = 1.0 / np.arange(1, ML_25M_TITLES + 1)
    catalogs = {
        f"{data} ({len(ds.catalog)} titles)": (ds.catalog, popularity),
        f"synthetic ({ML_25M_TITLES} titles)": (
            synthetic_catalog(ds.catalog, ML_25M_TITLES, rng),
            rng.permutation(zipf),
        ),
    }
    print(f"one POST /v1/recommendations of 100 liked entries, all unresolved; {runs} runs")
    for name, (catalog, pop) in catalogs.items():
        t0 = time.perf_counter()
        titles = _TitlesOnly(catalog, pop)
        build_s = time.perf_counter() - t0
        app = create_app(titles)  # type: ignore[arg-type]
        freeze_heap()  # as service.load_app does before serving
        with TestClient(app) as http:
            for kind in ("typo", "short", "long"):
                body = {"liked": worst_entries(catalog, kind, rng)}
                size = len(str(body).encode())

                def post(body: dict = body) -> None:
                    r = http.post("/v1/recommendations", json=body)
                    assert r.status_code == 404 and len(r.json()["unresolved"]) == 100

                post()  # warm
                wall, cpu = _timed(post, runs)
                print(
                    f"{name}, index built in {build_s:.2f} s; {kind:>5} entries ({size} B): "
                    f"wall {_ms(wall)}; CPU {_ms(cpu)}"
                )


def _ms(seconds: list[float]) -> str:
    s = np.asarray(seconds) * 1e3
    return f"min {s.min():.1f} / median {np.median(s):.1f} / max {s.max():.1f} ms"


if __name__ == "__main__":
    main()
