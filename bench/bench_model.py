"""One of our models on ml-latest-small: validation and test, sampled and full ranking, per seed.

    python bench/bench_model.py --model history [--seeds 0,1,2] [--threads 2]
    python bench/bench_model.py --model history --seeds 0 --set factors=128 length=50
    python bench/bench_model.py --model sasrec --seeds 0 --set length=50 dropout=0.5

Each seed trains the model's preset (``movierec.training.config.PRESETS``) with the
``--set`` overrides (any ``TrainConfig`` field: a validation grid) on the one training loop,
epoch chosen on validation sampled HR@10, and is evaluated with ``evaluate(..., seed=seed)``:
validation with the user's input formed from train, test from train + validation. Prints one
JSON line per seed as it finishes (``--jsonl FILE`` appends it there too), then mean ± std.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from movierec.evaluate import evaluate
from movierec.models import TorchScorer, scorer_for
from movierec.movielens import load
from movierec.prepare import prepare
from movierec.split import leave_last_out
from movierec.training.config import PRESETS, TrainConfig
from movierec.training.fit import fit


def flat(m) -> dict[str, float]:
    d = m.to_dict()
    out = {f"sampled_{k}": v for k, v in d["sampled"].items() if k != "users"}
    out.update({f"full_{k}": v for k, v in d.get("full", {}).items() if k != "users"})
    if "coverage@10" in d:
        out["coverage@10"] = d["coverage@10"]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="history", choices=sorted(PRESETS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--progress", type=int, default=1)
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="preset overrides")
    p.add_argument("--jsonl", default=None, help="also append each seed's line to this file")
    a = p.parse_args()
    overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    torch.set_num_threads(a.threads)
    ds, _ = load("ml-latest-small")
    ds, _ = prepare(ds)
    split = leave_last_out(ds.interactions)
    runs = []
    for seed in (int(s) for s in a.seeds.split(",")):
        cfg = TrainConfig.for_model(
            a.model, **{"epochs": a.epochs, **overrides}, seed=seed, device=a.device
        )
        res = fit(split, cfg, progress=bool(a.progress))
        t0 = time.perf_counter()
        test = flat(evaluate(TorchScorer(res.model, res.device), split, seed=seed, on="test"))
        validation = scorer_for(res.model, split, "validation")
        val = flat(evaluate(validation, split, seed=seed, on="validation"))
        run = {
            "model": a.model,
            "set": overrides,
            "seed": seed,
            "best_epoch": res.best_epoch,
            "epochs_run": len(res.history),
            "train_s": round(res.seconds, 1),
            "eval_s": round(time.perf_counter() - t0, 1),
            "curve": [round(h.val_hr10, 4) for h in res.history],
            "validation": val,
            "test": test,
        }
        runs.append(run)
        print(json.dumps(run), flush=True)
        if a.jsonl:
            with open(a.jsonl, "a", encoding="utf-8") as f:
                f.write(json.dumps(run) + "\n")
    for part in ("validation", "test"):
        keys = ("sampled_hr@10", "sampled_ndcg@10", "full_hr@10", "full_ndcg@10", "coverage@10")
        cells = []
        for k in keys:
            v = np.array([r[part][k] for r in runs])
            cells.append(f"{k}={v.mean():.4f}±{v.std():.4f}")
        print(f"{part.upper():<10} " + " ".join(cells))
    t = np.array([r["train_s"] for r in runs])
    print(f"train seconds {t.mean():.0f}±{t.std():.0f} (seeds {a.seeds}, {a.threads} threads)")
    print(f"settings: {json.dumps({**PRESETS[a.model], **overrides})}")


if __name__ == "__main__":
    main()
