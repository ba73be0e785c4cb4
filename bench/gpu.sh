#!/usr/bin/env bash
# The GPU check: the GPU tests, then the GPU benchmarks, one line per figure.
#
#   bash bench/gpu.sh                 # from anywhere, on a machine with one CUDA GPU
#
# Needs a Python with a CUDA build of torch and movierec's dependencies (PYTHON, default
# python3); movierec itself is taken from this checkout's src/. Budget: about 5 minutes on
# one H100/H200, of which ~1 minute generates the ML-25M-shaped data (reused when present,
# DATA=...). Each figure prints as "figure: value (target)"; logs go to OUT (data/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DATA=${DATA:-data/synth-1}
OUT=${OUT:-data/gpu}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
mr() { "$PY" -m movierec.cli "$@"; }
took() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"
print("device:", torch.cuda.get_device_name(), "| torch", torch.__version__)'

# 1. the GPU tests (tests/test_gpu.py; skipped on machines without CUDA)
"$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py >"$OUT/tests.log" 2>&1 || true
echo "gpu tests: $(tail -n 1 "$OUT/tests.log")"

# 2. data: ML-25M-shaped synthetic, every year kept (the 2010+ workload filters it)
[ -f "$DATA/ratings.csv" ] || mr synth "$DATA" --scale 1 >"$OUT/synth.log" 2>&1

# 3. the tutorial model, 2010+ workload, 5 epochs (target: <= 10 s of training)
"$PY" bench/bench_train.py pipeline --data "$DATA" --min-year 2010 --device cuda \
    --full-users 0 --json "$OUT/tutorial.jsonl" >"$OUT/tutorial.log" 2>&1
"$PY" - "$OUT/tutorial.jsonl" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print(f"tutorial 5 epochs, 2010+: training {r['fit_s']:.1f} s (target <= 10 s); "
      f"pipeline {r['total_s']:.1f} s; test sampled HR@10 {r['sampled']['hr@10']:.4f}, "
      f"full HR@10 {r['full']['hr@10']:.4f} on {r['full_users']:,} users")
EOF

# 4. NeuMF f=64 on the full-scale set, one epoch (target: >= 10M training rows/s)
t=$(date +%s.%N)
mr train --data "$DATA" --model neumf --factors 64 --epochs 1 --batch 65536 --lr 0.005 \
    --device cuda --out "$OUT/neumf" --no-progress >"$OUT/neumf.log" 2>&1
"$PY" - "$OUT/neumf/train_log.csv" "$(took "$t")" <<'EOF'
import csv, sys
e = list(csv.DictReader(open(sys.argv[1])))[-1]
print(f"neumf f=64, full scale: {float(e['rows/s']) / 1e6:.1f}M training rows/s (target >= 10M); "
      f"epoch {float(e['seconds']):.1f} s; val HR@10 {float(e['val_hr@10']):.4f}; "
      f"command {sys.argv[2]} s")
EOF

# 5. every user's top 10 over the whole catalogue into a store (target: <= 60 s)
t=$(date +%s.%N)
mr batch "$OUT/neumf" --out "$OUT/recs.sqlite" --no-progress >"$OUT/batch.log" 2>&1
echo "batch, every user, neumf f=64: $(took "$t") s wall (target <= 60 s): $(tail -n 1 "$OUT/batch.log")"
