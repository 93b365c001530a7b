#!/usr/bin/env bash
# Several `models train` configurations at once on one GPU machine (each run is
# CPU-bound on its Python loop, so eight share an H200 at nearly full speed).
#   scripts/train_sweep.sh CONFIGS OUT_DIR [DATA_DIR]
# CONFIGS: one run per line, "<name> <models train flags...>", e.g. "ema --ema 0.999".
# Each run writes OUT_DIR/<name>/ (an uncalibrated bundle with its train.log);
# OUT_DIR/summary.txt has every run's validation lines. BUDGET (seconds, default
# 530) bounds each run; a run cut short keeps its best epoch so far.
set -uo pipefail
configs=$1 out=$2 data=${3:-}
cd "$(dirname "$0")/.."
py=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
run() {
  local name=$1; shift
  timeout "${BUDGET:-530}" "$py" -m reputation_pipeline.scoring.cli models train ${data:+--data "$data"} \
    --out "$out/$name" --threads "${THREADS:-2}" --no-calibrate "$@" > "$out/$name.log" 2>&1
  echo "$name rc=$?" >> "$out/rc.txt"
}
while read -r name args; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  run "$name" $args &
done < "$configs"
wait
for f in "$out"/*.log; do
  n=$(basename "$f" .log)
  echo "== $n"; grep -E "^epoch [0-9]+:|^validation:" "$f" | tail -2
  [ -d "$out/$n" ] && cp "$f" "$out/$n/train.log"
done > "$out/summary.txt"
cat "$out/rc.txt" "$out/summary.txt"
