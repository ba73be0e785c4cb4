"""Kill -9 `movierec train` at random moments: does the previous run survive every time?

    python bench/bench_faults_train.py --trials 10 --epochs 5 --out /tmp/x

One good run first (timed), then each trial runs ``movierec train --model history --epochs E
--out OUT`` again and sends it SIGKILL at a uniformly random moment within the good run's
duration (so kills land in start-up, data loading, the epochs and the publishing of the
run; a trial whose training finished first counts as finished), then runs ``movierec
evaluate OUT``. One line per trial: when the kill came, what the training was doing
(``starting``: no epoch logged yet; ``training``: N epochs logged, in the work directory, or
in OUT itself for a checkout that trains there; ``publishing``: a new run being written),
and whether evaluate worked; then the count. Data: ``--data``
(default the embedded ml-latest-small). Another checkout's code: run it with PYTHONPATH set
to that checkout's ``src``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

MOVIEREC = [sys.executable, "-m", "movierec"]


def train_command(args: argparse.Namespace) -> list[str]:
    return [
        *MOVIEREC,
        "train",
        "--data",
        args.data,
        "--model",
        "history",
        "--epochs",
        str(args.epochs),
        "--out",
        str(args.out),
        "--device",
        "cpu",
        "--no-progress",
    ]


def state_of(out: Path, since: float) -> str:
    """What a training into ``out`` started at ``since`` (epoch seconds) is doing, from what
    it left on disk."""
    side = [p.name for p in out.parent.glob(f".{out.name}.*")]
    if any(".tmp-" in n or ".old-" in n for n in side):
        return "publishing"
    logs = [out.parent / f".{out.name}.work" / "train_log.csv", out / "train_log.csv"]
    fresh = [p for p in logs if p.exists() and p.stat().st_mtime >= since]  # this training's
    if fresh:
        return f"training ({len(fresh[0].read_text().splitlines()) - 1} epochs logged)"
    return "starting"


def evaluate(out: Path) -> tuple[bool, str]:
    done = subprocess.run([*MOVIEREC, "evaluate", str(out)], capture_output=True, text=True)
    last = (done.stderr.strip().splitlines() or [""])[-1] if done.returncode else "ok"
    return done.returncode == 0, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/x"))
    parser.add_argument("--data", default="ml-latest-small")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = args.out
    for p in [out, *out.parent.glob(f".{out.name}.*")]:
        shutil.rmtree(p, ignore_errors=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")

    t0 = time.perf_counter()
    subprocess.run(train_command(args), check=True, capture_output=True)
    good = time.perf_counter() - t0
    ok, why = evaluate(out)
    print(f"good run: {good:.1f} s; evaluate {why}", flush=True)
    if not ok:
        sys.exit("the good run does not evaluate")

    survived = 0
    for trial in range(1, args.trials + 1):
        at, since = rng.uniform(0.0, good), time.time()
        proc = subprocess.Popen(
            train_command(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.perf_counter() + at
        while proc.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            state = state_of(out, since)
            proc.send_signal(signal.SIGKILL)
        else:
            state = "finished before the kill"
        proc.wait()
        ok, why = evaluate(out)
        survived += ok
        print(f"trial {trial:>2}: kill at {at:5.1f} s, {state:<26} evaluate: {why}", flush=True)
    print(f"evaluate worked after {survived}/{args.trials} kills")


if __name__ == "__main__":
    main()
