"""Full-scale pipeline, stage by stage: wall time and peak RSS of each CLI command.

    movierec synth data/synth-1 --scale 1                  # ML-25M shaped, every year kept
    python bench/bench_scale.py --data data/synth-1 --out data/scale

Each stage is the command a user would type, run as its own process, so its peak RSS is its
own (``os.wait4``): ``prepare``; ``train`` (NeuMF f=32, ``--epochs`` epochs at batch 16,384,
the automatic batch size of the tutorial preset at this scale; the epoch times
come from the run's train_log.csv); ``evaluate`` (both protocols, every held-out user);
``batch`` (every user's top 10 into a SQLite store); ``epoch`` (not a command: load +
split + one epoch's training rows, the train stage's memory peak, in seconds rather than
an epoch's half hour). ``--stages`` picks a subset (a later
stage reuses the run directory of an earlier invocation). One JSON line per stage is
appended to ``OUT/scale.jsonl``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("prepare", "train", "evaluate", "batch", "epoch")
EPOCH = """
import resource, sys, time, torch
from movierec.movielens import load
from movierec.prepare import prepare
from movierec.split import leave_last_out
from movierec.train import TrainRows
ds, _ = prepare(load(sys.argv[1])[0])
rows = TrainRows.from_split(leave_last_out(ds.interactions), torch.device("cpu"))
t = time.perf_counter()
users, _, _ = rows.epoch(0, 0, 4)
print(f"{users.numel():,} rows in {time.perf_counter() - t:.1f} s")
"""  # one training epoch's rows built after load + split: the train stage's memory peak


def run_stage(name: str, argv: list[str], log: Path) -> dict:
    """Run ``movierec ARGV`` (or ``python -c`` for "epoch"); wall seconds, CPU seconds and
    peak RSS (GiB) of that process."""
    cmd = [sys.executable, *(argv if name == "epoch" else ["-m", "movierec.cli", *argv])]
    print(f"$ {' '.join(argv)}", flush=True)
    t = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{name} failed with exit status {code}; see {log}")
    return {
        "stage": name,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),  # KiB on Linux
        "command": ("python " if name == "epoch" else "movierec ") + " ".join(argv),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="data/synth-1")
    p.add_argument("--out", type=Path, default=Path("data/scale"))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--factors", type=int, default=32)
    p.add_argument("--batch", type=int, default=16384, help="the preset's 256 is for small data")
    p.add_argument("--lr", type=float, default=0.0057, help="1e-3 * sqrt(batch / 512)")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    args = p.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = set(stages) - set(STAGES)
    if unknown:
        sys.exit(f"unknown stages: {', '.join(sorted(unknown))}; known: {', '.join(STAGES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    run = args.out / "neumf"
    argv = {
        "prepare": ["prepare", "--data", args.data],
        "train": [
            "train", "--data", args.data, "--model", "neumf", "--factors", str(args.factors),
            "--epochs", str(args.epochs), "--batch", str(args.batch), "--lr", str(args.lr),
            "--out", str(run), "--no-progress",
        ],
        "evaluate": ["evaluate", str(run), "--json"],
        "batch": ["batch", str(run), "--out", str(args.out / "recs.sqlite"), "--no-progress"],
        "epoch": ["-c", EPOCH, args.data],
    }  # fmt: skip
    for name in stages:
        row = run_stage(name, argv[name], args.out / f"{name}.log")
        if name == "train":
            with open(run / "train_log.csv") as f:
                epochs = list(csv.DictReader(f))
            row["epoch_s"] = [float(r["seconds"]) for r in epochs]
            row["rows_per_s"] = [float(r["rows/s"]) for r in epochs]
            row["val_hr@10"] = [float(r["val_hr@10"]) for r in epochs]
        if name == "evaluate":  # the JSON object printed by --json (warnings may surround it)
            text = (args.out / "evaluate.log").read_text()
            row["metrics"] = json.loads(text[text.index("{") : text.rindex("}") + 1])
        print(json.dumps(row), flush=True)
        with open(args.out / "scale.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
