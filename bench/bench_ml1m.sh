#!/usr/bin/env bash
# Every model on MovieLens 1M, leave-last-out, test HR@10 / NDCG@10 on both protocols (the
# published ML-1M leave-one-out full-ranking figures to be level with: SASRec+ HR@10 0.315 /
# NDCG@10 0.182, Klenitskiy & Vasilev 2023; HSTU-large 0.329 / 0.189, Zhai et al. 2024).
# Peers tuned on validation, our models' epochs chosen on validation, three seeds.
#   bash bench/bench_ml1m.sh [OUT_DIR [DATA]]   (the network once, for `movierec fetch ml-1m`)
# Writes OUT_DIR/ml1m.json (`movierec compare --json`) and prints the table. DATA: a directory
# instead of the download (a rehearsal on other data); MODELS=a,b overrides the list.
set -euo pipefail
out=${1:-bench-ml1m}
data=${2:-ml-1m}
models=${MODELS:-popularity,bpr,ials,ease,tutorial,neumf,history,sasrec}
mkdir -p "$out"
[ -d "$data" ] || movierec fetch "$data"
movierec compare --data "$data" --seeds 3 --models "$models" --json > "$out/ml1m.json.tmp"
mv "$out/ml1m.json.tmp" "$out/ml1m.json"
python - "$out/ml1m.json" <<'PY'
import json, sys
board = json.load(open(sys.argv[1]))
keys = ("sampled.hr@10", "sampled.ndcg@10", "full.hr@10", "full.ndcg@10")
print(f"{'model':<12}" + "".join(f"{k:>22}" for k in keys))
for model, row in board.items():
    if model == "paired":
        continue
    cells = [row[f"test.{k}"] for k in keys]
    print(f"{model:<12}" + "".join(f"{m:>15.3f} ± {s:.3f}" for m, s in cells))
for d in board.get("paired", []):
    print(d["verdict"])
PY
