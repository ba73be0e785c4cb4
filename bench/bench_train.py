"""Training speed and the batch-size trade-off.

    python bench/bench_train.py pipeline --data data/synth-1 --min-year 2010
    python bench/bench_train.py batches --data data/synth-1 --min-year 2010 \\
        --runs 512:1e-3 16384:4e-3
    python bench/bench_train.py plain --data data/synth-1 --min-year 2010 --batch 16384
    python bench/bench_train.py plain --data data/synth-1 --min-year 0 --model neumf \\
        --batch 16384 --steps 40 --profile [--keep-freed-memory]

``pipeline``: the whole job timed stage by stage: load + prepare + split, ``fit`` (the
tutorial preset unless overridden), then test evaluation on both protocols (the full
protocol on ``--full-users`` random held-out users, all when 0).
``batches``: one ``fit`` per ``BATCH:LR`` with validation HR@10 after every epoch.
``plain``: the same epoch through a bare torch loop (no Lightning), to price its overhead;
``--steps N`` times only the first N steps, ``--profile`` prints where a step's time goes.
Every result is printed and, with ``--json PATH``, appended there as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from dataclasses import asdict

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from movierec import movielens
from movierec.evaluate import evaluate_full, evaluate_sampled, holdout
from movierec.models import build_model
from movierec.prepare import prepare
from movierec.split import Split, leave_last_out
from movierec.train import TrainConfig, TrainRows, fit, keep_freed_memory, resolve_device


def load_split(args: argparse.Namespace) -> tuple[Split, dict[str, float]]:
    times = {}
    t = time.perf_counter()
    ds, _ = movielens.load(args.data)
    times["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ds, _ = prepare(ds, min_year=args.min_year)
    times["prepare_s"] = time.perf_counter() - t
    t = time.perf_counter()
    split = leave_last_out(ds.interactions)
    times["split_s"] = time.perf_counter() - t
    print(
        f"{args.data} min_year={args.min_year}: {len(split.train):,} train, "
        f"{split.n_users:,} users, {split.n_items:,} movies; "
        + ", ".join(f"{k} {v:.1f}" for k, v in times.items()),
        file=sys.stderr,
    )
    return split, times


def config_from(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    given = dict(epochs=args.epochs, batch_size=args.batch, lr=args.lr, seed=args.seed)
    return TrainConfig.for_model(args.model, **{**given, **overrides}, device=args.device)


class CpuClock(L.Callback):
    """Process CPU seconds of each epoch's training batches (robust to shared cores)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.seconds: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.start = time.process_time()

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.seconds.append(time.process_time() - self.start)


def run_fit(split: Split, config: TrainConfig, progress: bool) -> dict:
    cpu, clock = time.process_time(), CpuClock()
    result = fit(split, config, progress=progress, callbacks=[clock])
    out = {
        "config": result.config.to_dict(),
        "fit_s": result.seconds,
        "fit_cpu_s": time.process_time() - cpu,
        "best_epoch": result.best_epoch,
        "epochs": [asdict(h) for h in result.history],
        "train_cpu_s": clock.seconds,
    }
    rows = len(split.train) * (1 + config.negatives)
    for h, c in zip(result.history, clock.seconds):
        print(
            f"  epoch {h.epoch}: loss {h.loss:.4f} val HR@10 {h.val_hr10:.4f} "
            f"NDCG@10 {h.val_ndcg10:.4f} {h.rows_per_s / 1e3:,.0f}k rows/s "
            f"({rows / c / 1e3:,.0f}k rows per CPU-s) {h.seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return out | {"result": result}


def cmd_pipeline(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    split, times = load_split(args)
    fitted = run_fit(split, config_from(args), progress=args.progress)
    scorer = fitted.pop("result").scorer()
    h = holdout(split, part="test", seed=0)
    t = time.perf_counter()
    sampled = evaluate_sampled(scorer, h.users, h.targets, h.candidates)
    times["eval_sampled_s"] = time.perf_counter() - t
    pick = np.arange(h.users.size)
    if args.full_users and args.full_users < h.users.size:
        pick = np.sort(np.random.default_rng(0).choice(h.users.size, args.full_users, False))
    t = time.perf_counter()
    full = evaluate_full(scorer, h.users[pick], h.targets[pick], h.seen)
    times["eval_full_s"] = time.perf_counter() - t
    times["total_s"] = time.perf_counter() - t0
    print(
        f"test sampled HR@10 {sampled['hr@10']:.4f}, full HR@10 {full['hr@10']:.4f} "
        f"({pick.size:,} users); " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()),
        file=sys.stderr,
    )
    return {"sampled": sampled, "full": full, "full_users": int(pick.size), **times, **fitted}


def cmd_batches(args: argparse.Namespace) -> dict:
    split, times = load_split(args)
    runs = []
    for spec in args.runs:
        batch, lr = spec.split(":")
        config = config_from(args, batch_size=int(batch), lr=float(lr))
        print(f"batch {batch} lr {lr}", file=sys.stderr)
        fitted = run_fit(split, config, progress=args.progress)
        result = fitted.pop("result")
        h = holdout(split, part="test", seed=0)
        test = evaluate_sampled(result.scorer(), h.users, h.targets, h.candidates)
        print(f"  test sampled HR@10 {test['hr@10']:.4f} NDCG@10 {test['ndcg@10']:.4f}")
        runs.append(fitted | {"test_sampled": test})
    return {"runs": runs, **times}


def cmd_plain(args: argparse.Namespace) -> dict:
    """One epoch of the same rows and model through a bare loop: the Lightning-free floor."""
    split, _ = load_split(args)
    config = config_from(args)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config.model_config(split.n_users, split.n_items)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    rows = TrainRows.from_split(split, device)
    t = time.perf_counter()
    users, items, labels = rows.epoch(config.seed, 0, config.negatives)
    sample_s = time.perf_counter() - t
    bs = config.batch_size
    n_rows = min(users.numel(), args.steps * bs) if args.steps else users.numel()

    def step(s: int) -> None:
        logits = model(users[s : s + bs], items[s : s + bs])
        loss = F.binary_cross_entropy_with_logits(logits, labels[s : s + bs])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if args.keep_freed_memory:
        keep_freed_memory(True)
    if args.profile:  # where a step's time goes: 10 steps after 3 warm-up steps
        from torch.profiler import ProfilerActivity, profile

        for s in range(0, 3 * bs, bs):
            step(s)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for s in range(3 * bs, 13 * bs, bs):
                step(s)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    cpu, t = time.process_time(), time.perf_counter()
    for s in range(0, n_rows, bs):
        step(s)
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t
    print(f"{n_rows / (time.process_time() - cpu) / 1e3:,.0f}k rows per CPU-s", file=sys.stderr)
    out = {
        "batch_size": bs,
        "rows": n_rows,
        "sample_s": sample_s,
        "train_s": train_s,
        "train_cpu_s": time.process_time() - cpu,
        "rows_per_s": n_rows / train_s,
    }
    print(json.dumps(out), file=sys.stderr)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("command", choices=["pipeline", "batches", "plain"])
    p.add_argument("--data", default="data/synth-1")
    p.add_argument("--min-year", type=int, default=2010)
    p.add_argument("--model", default="tutorial")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--runs", nargs="+", default=["512:1e-3", "16384:4e-3"], help="BATCH:LR")
    p.add_argument("--full-users", type=int, default=0, help="full protocol on N users (0: all)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--steps", type=int, help="plain: time only the first N steps")
    p.add_argument("--profile", action="store_true", help="plain: torch.profiler over 10 steps")
    p.add_argument(
        "--keep-freed-memory", action="store_true", help="plain: train.keep_freed_memory()"
    )
    p.add_argument("--json", help="append the result as one JSON line to this file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    out = {"plain": cmd_plain, "pipeline": cmd_pipeline, "batches": cmd_batches}[args.command](args)
    record = {
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "load_avg": list(map(float, open("/proc/loadavg").read().split()[:3])),
        **out,
    }
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")


if __name__ == "__main__":
    main()
