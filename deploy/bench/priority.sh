#!/usr/bin/env bash
# Priority lanes: high jobs past a low backlog. 100 000 low noop jobs (each holding a slot
# SLEEP_MS) are queued, one `sluice worker --kinds noop` (concurrency 32) drains them, and once it
# is saturated high jobs arrive through the api at RATE/s for SECONDS_HIGH s. Reports the high
# jobs' publish->start p50/p99 and the low jobs' throughput meanwhile (against the worker alone
# on the backlog), then the same steady jobs sent into the backlog's own lane (FIFO: what one
# topic gives) as the baseline, in the same run. Last, delayed jobs (delays 1-20 s, same rate)
# through the delay ladder: how late each started against its run_at, and whether any early.
#
#   make bench-priority
#   LOW=50000 RATE=100 deploy/bench/priority.sh
#
# Env: LOW (100000), RATE (50), SECONDS_HIGH (8), SLEEP_MS (5), CONCURRENCY (32),
# BOOTSTRAP (127.0.0.1:9092), SKIP_BUILD (1: bench target/release/sluice as it is).
# Prints the figures and writes them to deploy/bench/results/priority-<date>.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
LOW="${LOW:-100000}"
export RATE="${RATE:-50}" SECONDS_HIGH="${SECONDS_HIGH:-8}" SLEEP_MS="${SLEEP_MS:-5}"
CONCURRENCY="${CONCURRENCY:-32}"
BOOTSTRAP="${BOOTSTRAP:-127.0.0.1:9092}"
SLUICE="$REPO/target/release/sluice"
TOOL="$REPO/deploy/kafka/tool.sh"
RESULTS="$REPO/deploy/bench/results"
RUN_ID="benchprio$(date +%s)"
TMP="$(mktemp -d)"
PIDS=()
say() { printf '%s\n' "$*"; }
die() { printf 'bench-priority: %s\n' "$*" >&2; exit 1; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$TOOL" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete \
    --if-exists --topic "${RUN_ID}\\..*" >/dev/null 2>&1 || true
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { local i; for ((i = 0; i < 100; i++)); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; die "$1 did not answer"; }

deploy/env.sh kafka-start >/dev/null
deploy/env.sh redis-start >/dev/null
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  say "build: cargo build --release --bin sluice"
  "${CARGO:-cargo}" build --release --bin sluice
fi
export SLUICE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" SLUICE__REDIS__STATUS_TTL=10m \
  SLUICE__LOG__LEVEL=warn SLUICE__WORKER__CONCURRENCY="$CONCURRENCY"
# Every /v1 call needs a token: SLUICE_TOKEN for priority.py, its hash and scopes for the api.
set -a
eval "$("$SLUICE" tokens new --name bench --scope publish,read --env)" || die "sluice tokens new failed"
set +a

# run <phase> <low jobs>: a fresh prefix with that many low jobs queued, the api, a worker and
# (for delays) a scheduler, then the load.
run() {
  local phase=$1 backlog=$2 prefix="$RUN_ID.$1." api_port metrics_port
  api_port="$(free_port)"; metrics_port="$(free_port)"
  export SLUICE__TOPICS__PREFIX="$prefix" SLUICE__REDIS__KEY_PREFIX="$prefix"
  "$SLUICE" topics ensure >/dev/null
  if ((backlog > 0)); then
    awk -v n="$backlog" -v s="$SLEEP_MS" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"sleep_ms\":%d}\n", s }' >"$TMP/low.jsonl"
    "$SLUICE" publish noop --priority low --file "$TMP/low.jsonl" >/dev/null
  fi
  if [[ $phase == delayed ]]; then
    SLUICE__SCHEDULER__METRICS_LISTEN="127.0.0.1:$(free_port)" "$SLUICE" scheduler >"$TMP/scheduler.log" 2>&1 &
    PIDS+=($!)
  fi
  SLUICE__API__LISTEN="127.0.0.1:$api_port" "$SLUICE" api >"$TMP/api-$phase.log" 2>&1 &
  PIDS+=($!)
  SLUICE__WORKER__METRICS_LISTEN="127.0.0.1:$metrics_port" "$SLUICE" worker --kinds noop >"$TMP/worker-$phase.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$api_port/healthz"
  wait_http "http://127.0.0.1:$metrics_port/healthz"
  API="http://127.0.0.1:$api_port" METRICS="http://127.0.0.1:$metrics_port" python3 deploy/bench/priority.py "$phase"
  kill "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
}

say "lanes: $LOW low jobs queued, then $RATE high jobs/s for $SECONDS_HIGH s (each job ${SLEEP_MS} ms, concurrency $CONCURRENCY)"
run lanes "$LOW" >"$TMP/lanes.json"
LANES="$(cat "$TMP/lanes.json")"
say "  $LANES"
say "fifo baseline: the same steady jobs sent into the backlog's lane"
run fifo "$LOW" >"$TMP/fifo.json"
FIFO="$(cat "$TMP/fifo.json")"
say "  $FIFO"
say "delayed: $RATE jobs/s for $SECONDS_HIGH s, delays spread over 1-20 s, through the delay ladder (one scheduler)"
run delayed 0 >"$TMP/delayed.json"
DELAYED="$(cat "$TMP/delayed.json")"
say "  $DELAYED"
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
P50="$(field "$LANES" high_p50_ms)"; P99="$(field "$LANES" high_p99_ms)"
ALONE="$(field "$LANES" low_alone_per_s)"; DURING="$(field "$LANES" low_during_per_s)"
F50="$(field "$FIFO" fifo_p50_ms)"; F99="$(field "$FIFO" fifo_p99_ms)"
SHARE="$(awk "BEGIN { printf \"%.2f\", $DURING / $ALONE }")"
SPEEDUP="$(awk "BEGIN { printf \"%.0f\", $F99 / ($P99 > 0 ? $P99 : 1) }")"
say "high publish->start: p50 ${P50} ms, p99 ${P99} ms (FIFO: p50 ${F50} ms, p99 ${F99} ms: ${SPEEDUP}x)"
L50="$(field "$DELAYED" late_p50_ms)"; L99="$(field "$DELAYED" late_p99_ms)"; EARLY="$(field "$DELAYED" early)"
say "delayed jobs: started late by p50 ${L50} ms, p99 ${L99} ms; ${EARLY} early"
say "low jobs/s: ${ALONE} alone, ${DURING} while high jobs flowed (${SHARE} of it; weighted share 1/13 = 0.08)"

mkdir -p "$RESULTS"
OUT="$RESULTS/priority-$(date +%Y-%m-%d-%H%M%S).md"
cat >"$OUT" <<MD
# bench-priority $(date -u +%Y-%m-%dT%H:%MZ)

\`make bench-priority\` (LOW=$LOW, RATE=$RATE/s for ${SECONDS_HIGH} s, SLEEP_MS=$SLEEP_MS, concurrency $CONCURRENCY)

| | p50 | p99 |
|---|---|---|
| high job publish->start, lanes | ${P50} ms | ${P99} ms |
| same jobs in the backlog's lane (FIFO) | ${F50} ms | ${F99} ms |

Low jobs/s: ${ALONE} alone, ${DURING} while high jobs flowed (${SHARE}).

Delayed jobs ($RATE/s for ${SECONDS_HIGH} s, delays 1-20 s): started late by p50 ${L50} ms, p99 ${L99} ms; ${EARLY} started early.
MD
say "written: ${OUT#"$REPO"/}"
