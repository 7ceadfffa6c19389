#!/usr/bin/env bash
# Issue 8 item 6, measured: on this machine, does a second worker process help one run? Runs dailyPipeline from
# scratch over one landing with (a) one `cpa worker` with 2 DuckDB threads and (b) two `cpa worker` processes with
# 1 thread each, on one Temporal dev server, ROUNDS times each, alternating, and prints the wall time of each run
# (`cpa run --no-worker`) and the peak RSS summed over the workers.
#
#   bash scripts/bench-workers.sh LANDING [ROUNDS]     e.g. LANDING=/tmp/cpa-bench/landing-s10-seed42
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LANDING="$(cd "$1" && pwd)"
ROUNDS="${2:-3}"
WORK="$(mktemp -d /tmp/cpa-bench-workers.XXXXXX)"
eval "$(bash "$REPO/scripts/tools.sh" paths)"
PORT=$((20000 + RANDOM % 20000))
"$TEMPORAL_CLI_PATH" server start-dev --port "$PORT" --ui-port $((PORT + 1)) --ip 127.0.0.1 --log-level error \
  --search-attribute CpaLogicalDate=Keyword --search-attribute CpaRunKind=Keyword \
  --search-attribute CpaStatus=Keyword --search-attribute CpaFileKey=Keyword >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; pkill -P $$ 2>/dev/null; rm -rf "$WORK"' EXIT
export TEMPORAL_ADDRESS="127.0.0.1:$PORT" CPA_LOG_LEVEL=warn CPA_CASSANDRA_CONTACT_POINTS=
for _ in $(seq 60); do node -e "require('net').connect($PORT,'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))" && break; sleep 0.5; done

peak_rss_kib() { # summed VmHWM of the given pids
  local total=0 p
  for p in "$@"; do total=$((total + $(awk '/VmHWM/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0))); done
  echo "$total"
}

run_case() { # name workers threads round
  local name=$1 n=$2 threads=$3 round=$4 queue="bench-$1-$4" lake="$WORK/lake-$1-$4" pids=() i
  for i in $(seq "$n"); do
    TEMPORAL_TASK_QUEUE=$queue CPA_DUCKDB_THREADS=$threads CPA_LAKE_ROOT=$lake CPA_LANDING_ROOT=$LANDING \
      CPA_WORKER_IDENTITY="$name-$i" node "$REPO/bin/cpa.js" worker >"$WORK/$name-$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 120); do
    local up=0
    for i in $(seq "$n"); do grep -q 'worker polling' "$WORK/$name-$i.log" 2>/dev/null && up=$((up + 1)); done
    [ "$up" -eq "$n" ] && break
    sleep 0.25
  done
  local t0 t1
  t0=$(date +%s.%N)
  TEMPORAL_TASK_QUEUE=$queue node "$REPO/bin/cpa.js" run --no-worker --lake "$lake" --landing "$LANDING" >/dev/null
  t1=$(date +%s.%N)
  printf '%s round %s: %.2f s, peak RSS %d MiB over %d worker(s)\n' "$name" "$round" "$(echo "$t1 - $t0" | bc)" \
    $(($(peak_rss_kib "${pids[@]}") / 1024)) "$n"
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}

for r in $(seq "$ROUNDS"); do
  run_case one-worker-2-threads 1 2 "$r"
  run_case two-workers-1-thread 2 1 "$r"
done
