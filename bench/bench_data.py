"""Data layer benchmark: load (read + validate + encode) + prepare + split, on synthetic ML-25M.

    python bench/bench_data.py                      # data/synth-1, generated first if absent
    python bench/bench_data.py --data DIR --scale S --regenerate
    python bench/bench_data.py --data ml-latest-small   # a release name: the embedded set

Generation runs in a child process (``movierec synth``) so that its memory does not count
towards the peak RSS reported for the pipeline, which runs in this process.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from movierec.movielens import RELEASES, load
from movierec.prepare import prepare


def peak_rss_gib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def generate(out: Path, scale: float) -> None:
    cmd = [sys.executable, "-m", "movierec.cli", "synth", str(out), "--scale", str(scale)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"synth --scale {scale}: {wall:.1f} s wall, {child.ru_utime + child.ru_stime:.1f} s CPU, "
        f"peak RSS {peak_rss_gib(resource.RUSAGE_CHILDREN):.2f} GiB"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/synth-1"), help="folder or release")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--regenerate", action="store_true")
    a = p.parse_args()
    print(f"{platform.python_version()} on {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    named = str(a.data) in RELEASES and not a.data.exists()
    if a.regenerate or not (named or (a.data / "ratings.csv").exists()):
        generate(a.data, a.scale)

    try:
        from movierec.split import leave_last_out
    except ImportError:  # the split is written elsewhere; time the load alone without it
        leave_last_out = None

    clock = Clock()
    ds, load_report = load(a.data)
    clock.lap("load (read + validate + encode)")
    kept, _ = prepare(ds)
    clock.lap("prepare (users with >= 3)")
    if leave_last_out is not None:
        split = leave_last_out(kept.interactions)
        clock.lap(f"leave_last_out ({len(split.train):,} train, {len(split.test):,} test)")
    else:
        print("leave_last_out: not available (movierec.split missing): load alone")
    clock.total()
    ratings = Path(load_report.files[0])
    size = f"{ratings.stat().st_size / 2**20:.0f} MiB, " if ratings.is_file() else ""
    print(f"{ratings.name} {size}{load_report.rows_read:,} rows")
    print(f"peak RSS: {peak_rss_gib():.2f} GiB")

    for min_users in (3, 1):
        t = time.perf_counter()
        _, recent = prepare(ds, min_year=2010, min_user_interactions=min_users)
        print(
            f"--min-year 2010, users with >= {min_users}: {recent.interactions:,} ratings, "
            f"{recent.users:,} users, {recent.movies:,} movies "
            f"({time.perf_counter() - t:.2f} s)"
        )


class Clock:
    """Wall and CPU (all threads) seconds per stage; CPU shows the cost when cores are shared."""

    def __init__(self) -> None:
        self.start = self.wall = time.perf_counter()
        self.start_cpu = self.cpu = time.process_time()

    def lap(self, label: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        print(f"{label}: {wall - self.wall:.2f} s wall, {cpu - self.cpu:.2f} s CPU")
        self.wall, self.cpu = wall, cpu

    def total(self) -> None:
        wall, cpu = time.perf_counter() - self.start, time.process_time() - self.start_cpu
        print(f"total: {wall:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
