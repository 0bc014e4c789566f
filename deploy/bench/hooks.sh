#!/usr/bin/env bash
# Incoming webhooks: verified webhooks/s and p99 latency at 1 000 req/s. One `sluice api` with a
# `[hooks.bench]` Stripe source; deploy/bench/hooks.py sends distinct Stripe events signed by
# stripe-python (each verified, claimed in Redis, produced with acks=all and marked done before
# its 200): first N as fast as CONNECTIONS connections go, then the same count of
# `POST /v1/jobs/noop` (same produce path, no signature or claim) as the peer, then RATE/s for
# DURATION s open loop (latency from each request's due time). Loopback only, bounded in count.
#
#   make bench-hooks
#   N=5000 RATE=500 deploy/bench/hooks.sh
#
# Env: N (20000), CONNECTIONS (32), RATE (1000), DURATION (10), BOOTSTRAP (127.0.0.1:9092),
# SLUICE (target/release/sluice), SKIP_BUILD (1: bench $SLUICE as it is).
# Prints the figures and writes them to deploy/bench/results/hooks-<date>.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
export N="${N:-20000}" CONNECTIONS="${CONNECTIONS:-32}" RATE="${RATE:-1000}" DURATION="${DURATION:-10}"
BOOTSTRAP="${BOOTSTRAP:-127.0.0.1:9092}"
SLUICE="${SLUICE:-$REPO/target/release/sluice}"
TOOL="$REPO/deploy/kafka/tool.sh"
RESULTS="$REPO/deploy/bench/results"
RUN_ID="benchhooks$(date +%s)"
TMP="$(mktemp -d)"
API_PID=""
say() { printf '%s\n' "$*"; }
die() { printf 'bench-hooks: %s\n' "$*" >&2; exit 1; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n $API_PID ]] && kill "$API_PID" 2>/dev/null || true
  "$TOOL" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete \
    --if-exists --topic "${RUN_ID}\\..*" >/dev/null 2>&1 || true
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

deploy/env.sh up >/dev/null
deploy/pytools.sh
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  say "build: cargo build --release --bin sluice"
  "${CARGO:-cargo}" build --release --bin sluice
fi
[[ -x $SLUICE ]] || die "$SLUICE is missing"
API_PORT="$(free_port)"
export SECRET="whsec_bench_$RUN_ID" SOURCE=bench API="http://127.0.0.1:$API_PORT"
export SLUICE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" SLUICE__LOG__LEVEL=warn \
  SLUICE__TOPICS__PREFIX="$RUN_ID." SLUICE__REDIS__KEY_PREFIX="$RUN_ID:" \
  SLUICE__REDIS__STATUS_TTL=10m SLUICE__API__LISTEN="127.0.0.1:$API_PORT" \
  SLUICE__HOOKS__BENCH__SCHEME=stripe SLUICE__HOOKS__BENCH__SECRET="$SECRET"
"$SLUICE" topics ensure >/dev/null
# The peer's `POST /v1/jobs/noop` needs a token (webhooks do not): SLUICE_TOKEN for hooks.py,
# its hash and scope for the api.
set -a
eval "$("$SLUICE" tokens new --name bench --scope publish --env)" || die "sluice tokens new failed"
set +a
"$SLUICE" api >"$TMP/api.log" 2>&1 &
API_PID=$!
for ((i = 0; i < 100; i++)); do curl -sf "$API/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "$API/readyz" >/dev/null || die "the api did not become ready: $(tail -5 "$TMP/api.log")"

say "load: $N signed webhooks and $N noop jobs on $CONNECTIONS connections, then $RATE/s for $DURATION s"
.cache/pytools/bin/python deploy/bench/hooks.py >"$TMP/figures.json"
RECORDS="$("$TOOL" org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" \
  --topic "$RUN_ID.jobs.hook" 2>/dev/null | awk -F: '{ n += $3 } END { print n + 0 }')"
curl -s "$API/metrics" | grep '^sluice_hooks_received_total' >"$TMP/metrics.txt" || true

mkdir -p "$RESULTS"
OUT="$RESULTS/hooks-$(date +%Y-%m-%d-%H%M%S).md"
.cache/pytools/bin/python deploy/bench/hooks.py report "$TMP/figures.json" "$RECORDS" "$TMP/metrics.txt" "$SLUICE" >"$OUT"
cat "$OUT"
say "written: $OUT"
