"""Evaluation benchmarks: the peers' leaderboard on ml-latest-small, and full-ranking speed.

    python bench/bench_eval.py leaderboard --seeds 0 1 2 [--json OUT.json]
    python bench/bench_eval.py full-timing [--users 161900 --items 20482 --factors 64]
    python bench/bench_eval.py score-speed [--users 512 --tiles 8192 65536 --threads 1]
    python bench/bench_eval.py screened RUN [--users 8000]

``leaderboard`` tunes every peer on validation under each seed (model seed and candidate
seed; the split is fixed), then reports validation and test figures on both protocols as
mean ± std over seeds, plus the library-default settings of BPR and iALS for reference.
``full-timing`` times ``evaluate_full`` (and ``evaluate_sampled``) with a random-embedding
dot-product scorer at ML-25M-filtered scale, to show full ranking is practical on a CPU.
``score-speed`` times whole-catalogue scoring of the tutorial and NeuMF towers: the fused
CPU kernel and the torch path per tile size. ``screened`` times full ranking of a trained
run's first test users with integer screening and with exact scores only, checks that both
give the same metrics, and splits the time into the two kernels and the rest.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import scipy.sparse as sp
import torch

from movierec import movielens
from movierec.baselines import DotProduct
from movierec.compare import DEFAULT_PEERS, leaderboard, peer, summarize
from movierec.evaluate import evaluate_full, evaluate_sampled
from movierec.prepare import prepare
from movierec.split import leave_last_out

METRICS = ("sampled.hr@10", "sampled.ndcg@10", "full.hr@10", "full.ndcg@10", "coverage@10")


def run_leaderboard(args: argparse.Namespace) -> None:
    ds, _ = movielens.load(args.data)
    ds, _ = prepare(ds, min_year=args.min_year)
    split = leave_last_out(ds.interactions)
    print(
        f"{ds.name}: {split.n_users} users, {split.n_items} movies, "
        f"{len(split.train)} training interactions; seeds {args.seeds}",
        file=sys.stderr,
    )
    extra = {}
    if not args.no_defaults:
        extra = {"bpr (defaults)": peer("bpr", [{}]), "ials (defaults)": peer("ials", [{}])}
    t0 = time.perf_counter()
    rows = leaderboard(
        split,
        tuple(args.models),
        seeds=tuple(args.seeds),
        extra=extra,
        progress=lambda m: print(f"[{time.perf_counter() - t0:7.1f}s] {m}", file=sys.stderr),
    )
    summary = summarize(rows)
    for r in rows:
        s, f = r.test.sampled, r.test.full or {}
        print(
            f"{r.model:16s} seed {r.seed}  test sampled HR@10 {s['hr@10']:.3f} "
            f"NDCG@10 {s['ndcg@10']:.3f}  full HR@10 {f['hr@10']:.4f}  "
            f"val sampled HR@10 {r.validation.sampled['hr@10']:.3f}  "
            f"train {r.train_seconds:.1f}s tune {r.tune_seconds:.1f}s  {r.params}"
        )
    print()
    for part in ("validation", "test"):
        print(f"{part}: mean ± std over seeds {args.seeds}")
        print("| model | " + " | ".join(METRICS) + " | train s | settings chosen (per seed) |")
        print("|---" * (len(METRICS) + 3) + "|")
        for model, stats in summary.items():
            cells = [_pm(stats[f"{part}.{m}"]) for m in METRICS]
            settings = "; ".join(_params(p) for p in _unique(stats["params"]))
            train = _pm(stats["train_seconds"], 1)
            print(f"| {model} | " + " | ".join(cells) + f" | {train} | {settings} |")
        print()
    print(f"wall time {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    if args.json:
        out = {
            "command": " ".join(sys.argv),
            "data": ds.name,
            "seeds": args.seeds,
            "rows": [r.to_dict() | {"model": r.model} for r in rows],
            "summary": summary,
        }
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


def run_full_timing(args: argparse.Namespace) -> None:
    """Random 64-d embeddings; seen sets of ``per_user`` random items; one target each."""
    rng = np.random.default_rng(args.seed)
    n_users, n_items = args.users, args.items
    scorer = DotProduct(
        rng.standard_normal((n_users, args.factors), dtype=np.float32),
        rng.standard_normal((n_items, args.factors), dtype=np.float32),
    )
    rows = np.repeat(np.arange(n_users), args.per_user)
    cols = rng.integers(0, n_items, rows.size)
    seen = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    users = np.arange(n_users)
    targets = rng.integers(0, n_items, n_users)
    print(
        f"{n_users} users x {n_items} items, {args.factors} factors, {seen.nnz} seen; "
        f"torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}",
    )
    t0, c0 = time.perf_counter(), time.process_time()
    full = evaluate_full(scorer, users, targets, seen, batch=args.batch)
    t_full, c_full = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    scorer.score_all(users[: args.batch or 800])
    t_chunk = time.perf_counter() - t0
    # random candidates that never hit the target (distinctness does not matter for timing)
    cands = ((targets[:, None] + 1 + rng.integers(0, n_items - 1, (n_users, 99))) % n_items).astype(
        np.int32
    )
    t0, c0 = time.perf_counter(), time.process_time()
    evaluate_sampled(scorer, users, targets, cands)
    t_sampled, c_sampled = time.perf_counter() - t0, time.process_time() - c0
    n_chunks = -(-n_users // (args.batch or max(1, (1 << 24) // n_items)))
    print(
        f"evaluate_full:    {t_full:6.1f} s wall, {c_full:6.1f} s CPU "
        f"({n_chunks} chunks; hr@10 {full['hr@10']:.5f}, coverage@10 {full['coverage@10']:.3f})"
    )
    print(f"  scoring one chunk (the matmul alone): {t_chunk:.2f} s")
    print(f"evaluate_sampled: {t_sampled:6.1f} s wall, {c_sampled:6.1f} s CPU")


def run_score_speed(args: argparse.Namespace) -> None:
    """Whole-catalogue scoring speed of the NCF towers (random weights): the fused CPU
    kernel (movierec.fused) and the torch path per tile size."""
    from movierec import fused
    from movierec.models import ModelConfig, build_model

    shapes = {
        "tutorial": dict(factors=8, layers=(64, 32), n_items=20_613),  # 2010+ workload
        "neumf": dict(factors=32, mlp_factors=64, layers=(64, 32), n_items=62_423),  # ML-25M
    }
    if args.threads:
        torch.set_num_threads(args.threads)  # the fused kernel runs as many threads
    lanes = fused.LANES
    paths = ([f"fused ({lanes} lanes)"] if lanes else []) + [f"tile {t:,}" for t in args.tiles]
    torch.manual_seed(0)
    users = torch.arange(args.users)
    for kind, shape in shapes.items():
        config = ModelConfig(kind, args.users, **shape)
        model = build_model(config).eval()
        for path, tile in zip(paths, ([None] if lanes else []) + args.tiles):
            fused.LANES = lanes if tile is None else 0
            tile = tile or 1 << 13
            with torch.inference_mode():
                model.score_all(users[:4], chunk_rows=tile)  # warm up
                t0 = time.perf_counter()
                model.score_all(users, chunk_rows=tile)
                dt = time.perf_counter() - t0
            rate = args.users * config.n_items / dt / 1e6
            print(f"{kind:>8} ({config.n_items:,} items), {path:>16}: {rate:5.1f}M pairs/s")
    fused.LANES = lanes


def _pm(v: tuple[float, float], digits: int = 3) -> str:
    return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"


def _params(p: dict) -> str:
    return (
        ", ".join(f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}" for k, v in p.items())
        or "-"
    )


def _unique(items: list[dict]) -> list[dict]:
    out: list[dict] = []
    for p in items:
        if p not in out:
            out.append(p)
    return out


def run_screened(args: argparse.Namespace) -> None:
    """Full ranking of ``--users`` test users of a run: screened against exact."""
    from movierec import fused
    from movierec.artifacts import load_run
    from movierec.evaluate import holdout

    run = load_run(args.run)
    h = holdout(run.split, part="test", seed=0)
    users, targets = h.users[: args.users], h.targets[: args.users]
    scorer = run.model

    class ExactOnly:  # the same scorer without its bounded path
        n_users, n_items = scorer.n_users, scorer.n_items
        score, score_all = scorer.score, scorer.score_all

    timings, results = {}, {}
    for name, s in (("screened", scorer), ("exact", ExactOnly())):
        t0 = time.perf_counter()
        results[name] = evaluate_full(s, users, targets, h.seen)
        timings[name] = time.perf_counter() - t0
    chunk = max(1, (1 << 24) // scorer.n_items)
    buf = np.empty((chunk, scorer.n_items), np.float32)
    t0 = time.perf_counter()
    screen = scorer.bounded_scorer()
    for s in range(0, users.size, chunk):
        got = screen(users[s : s + chunk], buf[: users[s : s + chunk].size])
    t_int = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(0, users.size, chunk):
        scorer.score_all(users[s : s + chunk])
    t_float = time.perf_counter() - t0
    # the band and candidates of the last chunk
    u = users[s : s + chunk]
    t = scorer.score(u, targets[s : s + chunk, None])[:, 0]
    sc = fused.screen(got.scores, got.err_items, t, got.err_users, targets[s : s + chunk], 10)
    print(f"{users.size} test users x {scorer.n_items} movies, {torch.get_num_threads()} threads")
    print(f"evaluate_full screened {timings['screened']:.2f} s, exact {timings['exact']:.2f} s")
    print(f"  integer kernel {t_int:.2f} s; float kernel {t_float:.2f} s")
    print(
        f"  per user: {sc.band.size / u.size:.1f} movies in the band, "
        f"{sc.candidates.size / u.size:.1f} top-10 candidates; metrics identical: "
        f"{results['screened'] == results['exact']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    lb = sub.add_parser("leaderboard")
    lb.add_argument("--data", default="ml-latest-small")
    lb.add_argument("--min-year", type=int, default=None)
    lb.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    lb.add_argument("--models", nargs="+", default=list(DEFAULT_PEERS))
    lb.add_argument("--no-defaults", action="store_true", help="skip the library-default rows")
    lb.add_argument("--json", default=None, help="also write every row and the summary here")
    ft = sub.add_parser("full-timing")
    ft.add_argument("--users", type=int, default=161_900)
    ft.add_argument("--items", type=int, default=20_482)
    ft.add_argument("--factors", type=int, default=64)
    ft.add_argument("--per-user", type=int, default=19, help="seen items per user")
    ft.add_argument("--batch", type=int, default=None, help="users per chunk (default: auto)")
    ft.add_argument("--seed", type=int, default=0)
    sp = sub.add_parser("score-speed")
    sp.add_argument("--users", type=int, default=512)
    sp.add_argument("--tiles", type=int, nargs="+", default=[1 << 13, 1 << 16])
    sp.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    sc = sub.add_parser("screened")
    sc.add_argument("run", help="a run directory (movierec train --out)")
    sc.add_argument("--users", type=int, default=8000)
    args = ap.parse_args()
    commands = {"leaderboard": run_leaderboard, "full-timing": run_full_timing}
    commands["score-speed"] = run_score_speed
    commands["screened"] = run_screened
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
