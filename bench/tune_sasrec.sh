#!/usr/bin/env bash
# SASRec's validation grid on ml-latest-small (issue 14): one setting changed at a time from
# the preset (d 64, dropout 0.2, N 200, lr 1e-3; epochs chosen on validation, patience 20),
# seed 0; a change that beats the preset would be combined with the others that did. The
# chosen settings then go on the three-seed board (`movierec compare --seeds 3`). Selection
# reads validation sampled HR@10 only (bench_model.py prints test too: never used to choose).
#   bash bench/tune_sasrec.sh OUT.jsonl [THREADS]
set -euo pipefail
out=${1:?usage: tune_sasrec.sh OUT.jsonl [THREADS]}
threads=${2:-1}
run() { python "$(dirname "$0")/bench_model.py" --model sasrec --seeds 0 --progress 0 \
          --threads "$threads" --jsonl "$out" --set "$@"; }
run length=50
run lr=0.003
run dropout=0.5
run factors=128
run length=200  # the preset itself
run dropout=0.1
