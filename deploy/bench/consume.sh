#!/usr/bin/env bash
# Worker throughput: `sluice worker` doing noop jobs (job status on) against Kafka's own
# ConsumerPerformance reading the same topic, same broker, same run. Then the overhead of the
# `http` handler: jobs/s through a worker to a trivial local endpoint (nginx answering 200)
# against wrk hitting that endpoint directly.
#
#   make bench-consume                  # N=200000 records of ~200 bytes
#   N=50000 deploy/bench/consume.sh
#
# Env: N (200000), ROUNDS (3), HTTP_N (50000, jobs for the http part), BOOTSTRAP (127.0.0.1:9092).
# Prints the figures and writes them to deploy/bench/results/consume-<date>.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
N="${N:-200000}"
HTTP_N="${HTTP_N:-50000}"
ROUNDS="${ROUNDS:-3}"
BOOTSTRAP="${BOOTSTRAP:-127.0.0.1:9092}"
SLUICE="$REPO/target/release/sluice"
TOOL="$REPO/deploy/kafka/tool.sh"
RESULTS="$REPO/deploy/bench/results"
RUN_ID="bench$(date +%s)"
TMP="$(mktemp -d)"
PIDS=()
say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
calc() { awk "BEGIN { printf \"%s\", $1 }"; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  "$TOOL" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --delete \
    --if-exists --topic "${RUN_ID}\\..*" >/dev/null 2>&1 || true
  drop_status_keys
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The run's job status keys, under their own prefix: deleted at the end rather than left to
# expire, because Redis expiring (and rehashing) a few hundred thousand keys lands its CPU on
# whichever run comes next, and each run should start from the same Redis.
drop_status_keys() {
  redis-cli --scan --pattern "$RUN_ID:*" 2>/dev/null | xargs -r -n 1000 redis-cli unlink >/dev/null 2>&1 || true
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# finished_jobs <metrics port>: sluice_jobs_finished_total summed over outcomes.
finished_jobs() {
  curl -sf "http://127.0.0.1:$1/metrics" |
    awk '/^sluice_jobs_finished_total/ { n += $2 } END { printf "%d", n }'
}
# run_worker <prefix> <kinds> <jobs> [env...]: starts a worker, prints its steady-state jobs/s:
# the jobs between 10 % and 90 % of done, over the time that took (start-up and group join
# excluded, as ConsumerPerformance excludes them).
run_worker() {
  local prefix=$1 kinds=$2 total=$3 port
  shift 3
  port="$(free_port)"
  # A short status TTL: each run writes a status per job, and a week of benchmark keys would
  # leave the dev Redis slower (and bigger) for every run after it.
  env SLUICE__TOPICS__PREFIX="$prefix" SLUICE__WORKER__METRICS_LISTEN="127.0.0.1:$port" \
    SLUICE__REDIS__KEY_PREFIX="$RUN_ID:" SLUICE__REDIS__STATUS_TTL=10m SLUICE__LOG__LEVEL=warn "$@" "$SLUICE" worker --kinds "$kinds" >"$TMP/worker.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  local low=$((total / 10)) high=$((total * 9 / 10)) t_low="" t_high="" done=0 deadline=$((SECONDS + 600))
  until [[ -n $t_high ]]; do
    ((SECONDS < deadline)) || die "worker did not finish $total jobs in 600 s (log: $(tail -3 "$TMP/worker.log"))"
    kill -0 "$pid" 2>/dev/null || die "worker exited: $(tail -5 "$TMP/worker.log")"
    done="$(finished_jobs "$port" 2>/dev/null || echo 0)"
    if [[ -z $t_low ]] && ((done >= low)); then t_low="$(date +%s.%N)"; fi
    if [[ -n $t_low ]] && ((done >= high)); then t_high="$(date +%s.%N)"; fi
    sleep 0.05
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  drop_status_keys
  calc "($high - $low) / ($t_high - $t_low)"
}

deploy/env.sh kafka-start >/dev/null
deploy/env.sh redis-start >/dev/null
say "build: cargo build --release --bin sluice"
"${CARGO:-cargo}" build --release --bin sluice
export SLUICE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP"

# --- 1. noop jobs: sluice worker vs ConsumerPerformance on one topic ------------------------
# ROUNDS alternating rounds, each on its own copy of the records (its own topic), because one
# run of either varies by a quarter on this machine; the ratio reported is of the medians.
awk -v n="$N" 'BEGIN { pad = sprintf("%180s", ""); gsub(/ /, "x", pad)
  for (i = 1; i <= n; i++) printf "{\"payload\":\"%010d%s\"}\n", i, substr(pad, 1, 170) }' >"$TMP/jobs.jsonl"
PERFS=() WORKERS=()
for round in $(seq 1 "$ROUNDS"); do
  prefix="$RUN_ID.noop$round."
  SLUICE__TOPICS__PREFIX="$prefix" "$SLUICE" topics ensure >/dev/null
  say "round $round: publish $N noop jobs (~200-byte values) to ${prefix}jobs.noop"
  SLUICE__TOPICS__PREFIX="$prefix" "$SLUICE" publish noop --file "$TMP/jobs.jsonl" >/dev/null
  "$TOOL" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$BOOTSTRAP" \
    --topic "${prefix}jobs.noop" --messages "$N" --group "$RUN_ID.perf$round" --timeout 60000 \
    >"$TMP/perf.txt" 2>&1 || die "ConsumerPerformance failed: $(tail -5 "$TMP/perf.txt")"
  # Columns: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
  # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
  perf="$(awk -F', *' '/^[0-9][0-9][0-9][0-9]-/ { print $10 }' "$TMP/perf.txt" | tail -1)"
  [[ -n $perf ]] || die "could not read ConsumerPerformance's figures: $(cat "$TMP/perf.txt")"
  worker="$(run_worker "$prefix" noop "$N")"
  say "round $round: ConsumerPerformance $perf records/s (fetch.nMsg.sec: rebalance excluded), sluice worker (status on) $worker jobs/s (10 %..90 % of the run)"
  PERFS+=("$perf") WORKERS+=("$worker")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
PERF="$(median "${PERFS[@]}")"
WORKER="$(median "${WORKERS[@]}")"
RATIO="$(calc "$WORKER / $PERF")"
say "medians: ConsumerPerformance $PERF records/s, sluice worker $WORKER jobs/s = ${RATIO}x"

# --- 2. the http handler: a worker to nginx vs wrk to nginx ---------------------------------
command -v nginx >/dev/null || { say "nginx: installing (apt)"; source deploy/kafka/common.sh; apt_install nginx; }
command -v wrk >/dev/null || { say "wrk: installing (apt)"; source deploy/kafka/common.sh; apt_install wrk; }
NGINX_PORT="$(free_port)"
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { return 200 '{}'; }
  }
}
CONF
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx"
PIDS+=("$(cat "$TMP/nginx/nginx.pid")")
mkdir -p "$TMP/schemas/ping"
printf '%s' '{"type":"record","name":"Ping","fields":[{"name":"payload","type":"string"}]}' >"$TMP/schemas/ping/v1.avsc"
SECRET="whsec_$(head -c 24 /dev/urandom | base64)"
HTTP_ENV=(SLUICE__SCHEMAS__DIR="$TMP/schemas" SLUICE__KINDS__PING__HANDLER=http
  SLUICE__KINDS__PING__URL="http://127.0.0.1:$NGINX_PORT/jobs" SLUICE__KINDS__PING__SECRET="$SECRET"
  SLUICE__KINDS__PING__ALLOW_PRIVATE=true)
env SLUICE__TOPICS__PREFIX="$RUN_ID.http." "${HTTP_ENV[@]}" "$SLUICE" topics ensure >/dev/null
head -n "$HTTP_N" "$TMP/jobs.jsonl" >"$TMP/ping.jsonl"
env SLUICE__TOPICS__PREFIX="$RUN_ID.http." "${HTTP_ENV[@]}" "$SLUICE" publish ping --file "$TMP/ping.jsonl" >/dev/null
say "wrk: 2 threads, 32 connections, 10 s of POSTs straight to nginx"
printf 'wrk.method = "POST"\nwrk.body = string.rep("x", 400)\nwrk.headers["Content-Type"] = "application/json"\n' >"$TMP/post.lua"
wrk -t2 -c32 -d10s -s "$TMP/post.lua" "http://127.0.0.1:$NGINX_PORT/jobs" >"$TMP/wrk.txt"
WRK="$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.txt")"
say "wrk: $WRK requests/s"
say "sluice worker --kinds ping (http handler, 32 in flight): $HTTP_N jobs to the same nginx"
HTTP_WORKER="$(run_worker "$RUN_ID.http." ping "$HTTP_N" "${HTTP_ENV[@]}")"
HTTP_RATIO="$(calc "$HTTP_WORKER / $WRK")"
say "sluice http worker: $HTTP_WORKER jobs/s = ${HTTP_RATIO}x wrk"

mkdir -p "$RESULTS"
OUT="$RESULTS/consume-$(date +%Y-%m-%d-%H%M%S).md"
cat >"$OUT" <<MD
# bench-consume $(date -u +%Y-%m-%dT%H:%MZ)

Command: \`make bench-consume\` (N=$N, ROUNDS=$ROUNDS, HTTP_N=$HTTP_N), $(nproc) cores, Kafka $(cat deploy/kafka/VERSION).

| what | rate | ratio |
|---|---|---|
| Kafka ConsumerPerformance, $N records, median of $ROUNDS rounds (${PERFS[*]}) | $PERF records/s | 1 |
| \`sluice worker --kinds noop\` (status on), same records, median of $ROUNDS rounds (${WORKERS[*]}) | $WORKER jobs/s | ${RATIO}x |
| wrk → nginx (2 threads, 32 connections) | $WRK requests/s | 1 |
| \`sluice worker\`, \`http\` kind → the same nginx | $HTTP_WORKER jobs/s | ${HTTP_RATIO}x |
MD
say "written: ${OUT#"$REPO"/}"
