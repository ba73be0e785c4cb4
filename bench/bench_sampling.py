"""Negative sampling benchmark on the ML-25M-shaped 2010+ workload.

    python bench/bench_sampling.py --data data/synth-1     # movierec synth data/synth-1 first

Times one epoch of training negatives (4 per training positive) and the 99 evaluation
candidates of every held-out user, and verifies that no sampled item was ever seen.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from movierec.movielens import load
from movierec.prepare import prepare
from movierec.sampling import is_seen, sample_candidates, sample_negatives, seen_keys
from movierec.split import leave_last_out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/synth-1"))
    p.add_argument("--min-year", type=int, default=2010)
    p.add_argument("--negatives", type=int, default=4)
    a = p.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()}")
    ds, _ = prepare(load(a.data)[0], min_year=a.min_year)[0], None
    split = leave_last_out(ds.interactions)
    seen = split.seen_anywhere()
    print(
        f"{len(ds.interactions):,} ratings, {split.n_users:,} users, {split.n_items:,} movies; "
        f"{len(split.train):,} training positives"
    )
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    keys = seen_keys(seen)
    t1 = time.perf_counter()
    neg = sample_negatives(seen, split.train.users, a.negatives, rng, keys=keys)
    t2 = time.perf_counter()
    cand = sample_candidates(seen, split.test.users, rng, keys=keys)
    t3 = time.perf_counter()
    print(f"seen keys: {t1 - t0:.2f} s")
    print(f"training negatives: {neg.size:,} rows in {t2 - t1:.2f} s")
    print(f"evaluation candidates: {cand.shape[0]:,} users x {cand.shape[1]} in {t3 - t2:.2f} s")
    print(f"total: {t3 - t0:.2f} s (the tutorial's per-user loop: 129 s)")
    n = split.n_items
    assert not is_seen(keys, split.train.users[:, None], neg, n).any()
    assert not is_seen(keys, split.test.users[:, None], cand, n).any()
    srt = np.sort(cand, axis=1)
    assert (srt[:, 1:] != srt[:, :-1]).all()
    print("verified: no sampled item was seen; candidates distinct per user")


if __name__ == "__main__":
    main()
