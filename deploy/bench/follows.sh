#!/usr/bin/env bash
# Follow ingestion: a bulk import of follow changes produced straight to social.follows, applied
# by `sluice fanout` (follows/s), and the post -> feed latency of another author during it.
#
#   make bench-follows                     # 100 000 follows, ~1 min plus the build
#   FOLLOWS=20000 SKIP_BUILD=1 deploy/bench/follows.sh
#
# One run: a fresh topic prefix, Redis key prefix and consumer groups (benchfol<epoch>); AUTHORS
# authors with AUTHOR_POSTS posts each and an author with LAT_FOLLOWERS followers written straight
# into Redis; one `sluice fanout` and one `sluice api`; then FOLLOWS follow changes (USERS users,
# each following FOLLOWS/USERS distinct authors) produced with Python's confluent-kafka while one
# post every POST_EVERY ms goes through POST /v1/posts and is timed until a follower's feed holds
# it. Targets: >= 20 000 follows/s applied; post p99 < 1 s during the import. Writes
# deploy/bench/results/follows-<date>.md and removes the run's topics, groups and Redis keys.
#
# Env: FOLLOWS (100000), USERS (20000), AUTHORS (1000), AUTHOR_POSTS (10), LAT_FOLLOWERS (100),
# POST_EVERY (50 ms), SKIP_BUILD (1: bench target/release/sluice as it is), BOOTSTRAP
# (127.0.0.1:9092), REDIS_HOST (127.0.0.1), REDIS_PORT (6379), TIMEOUT (60 s per wait).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

export FOLLOWS="${FOLLOWS:-100000}" USERS="${USERS:-20000}" AUTHORS="${AUTHORS:-1000}"
export AUTHOR_POSTS="${AUTHOR_POSTS:-10}" LAT_FOLLOWERS="${LAT_FOLLOWERS:-100}" POST_EVERY="${POST_EVERY:-50}"
export BOOTSTRAP="${BOOTSTRAP:-127.0.0.1:9092}" TIMEOUT="${TIMEOUT:-60}"
export REDIS_HOST="${REDIS_HOST:-127.0.0.1}" REDIS_PORT="${REDIS_PORT:-6379}"
SLUICE="$REPO/target/release/sluice"
TOOL="$REPO/deploy/kafka/tool.sh"
PY="$REPO/.cache/pytools/bin/python"
RUN_ID="benchfol$(date +%s)"
export KEY_PREFIX="${RUN_ID}:"
TMP="$(mktemp -d)"
export TMP
PIDS=()
STARTED=0
T_START=$SECONDS

say() { printf '%s\n' "$*"; }
die() { printf 'bench-follows: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  set +e +o pipefail
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if ((STARTED)); then
    for group in sluice.fanout sluice.fanout.follows; do
      "$TOOL" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOTSTRAP" \
        --delete --group "${RUN_ID}.$group" >/dev/null 2>&1
    done
    "$TOOL" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
      --delete --if-exists --topic "${RUN_ID}\\..*" >/dev/null 2>&1 || say "cleanup: could not delete topics ${RUN_ID}.*" >&2
    python3 deploy/bench/fanout-load.py cleanup
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

deploy/env.sh up >/dev/null
deploy/pytools.sh
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  say "build: cargo build --release --bin sluice"
  "${CARGO:-cargo}" build --release --bin sluice || die "cargo build failed"
fi
[[ -x $SLUICE ]] || die "$SLUICE missing"

export SLUICE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" SLUICE__TOPICS__PARTITIONS=6
export SLUICE__TOPICS__PREFIX="${RUN_ID}." SLUICE__REDIS__KEY_PREFIX="$KEY_PREFIX"
export SLUICE__REDIS__URL="redis://$REDIS_HOST:$REDIS_PORT" SLUICE__LOG__LEVEL=warn
export SLUICE__API__QUEUE_STATS_INTERVAL=10m FOLLOWS_TOPIC="${RUN_ID}.social.follows"
set -a
eval "$("$SLUICE" tokens new --name bench --scope publish,read --env)"
set +a
# The 10-byte single-object header of FollowChanged v1, as sluice itself prints it.
FOLLOW_HEADER="$("$SLUICE" schemas | awk '$1 == "FollowChanged" && $2 == 1 { for (i = 4; i <= 13; i++) printf "%s", $i; exit }')"
[[ ${#FOLLOW_HEADER} == 20 ]] || die "could not read FollowChanged's header from 'sluice schemas'"
export FOLLOW_HEADER

say "run: $RUN_ID"
STARTED=1
"$SLUICE" topics ensure >"$TMP/ensure.out" 2>&1 || die "topics ensure failed: $(tail -n 5 "$TMP/ensure.out")"
"$PY" deploy/bench/follows.py seed

FANOUT_PORT="$(free_port)" API_PORT="$(free_port)"
export FANOUT_METRICS="127.0.0.1:$FANOUT_PORT" API="127.0.0.1:$API_PORT"
SLUICE__SOCIAL__METRICS_LISTEN="$FANOUT_METRICS" "$SLUICE" fanout >"$TMP/fanout.log" 2>&1 &
PIDS+=($!)
export FANOUT_PID=$!
SLUICE__API__LISTEN="$API" "$SLUICE" api >"$TMP/api.log" 2>&1 &
PIDS+=($!)
for addr in "$FANOUT_METRICS" "$API"; do
  for ((n = 0; n < 150; n++)); do curl -fsS -o /dev/null "http://$addr/metrics" 2>/dev/null && break; sleep 0.1; done
done
"$PY" deploy/bench/follows.py run | tee "$TMP/out.txt" || die "the run failed; fanout log: $(tail -n 20 "$TMP/fanout.log")"
ELAPSED=$((SECONDS - T_START))

mkdir -p deploy/bench/results
REPORT="deploy/bench/results/follows-$(date +%Y-%m-%d-%H%M%S).md"
{
  say "# Follow ingestion — $(date '+%Y-%m-%d %H:%M %Z')"
  say ""
  say '```'
  cat "$TMP/out.txt"
  say '```'
  say ""
  say "Command: \`make bench-follows\` (FOLLOWS=$FOLLOWS USERS=$USERS AUTHORS=$AUTHORS AUTHOR_POSTS=$AUTHOR_POSTS"
  say "LAT_FOLLOWERS=$LAT_FOLLOWERS POST_EVERY=$POST_EVERY); ${ELAPSED} s in all. Targets: >= 20 000 follows/s; post p99 < 1 s during the import."
  say ""
  say "- One \`sluice fanout\` (posts and follows consumed by groups of their own), one \`sluice api\`, 6 partitions per topic."
  say "- Follow records produced by Python confluent-kafka (acks=all, idempotent, linger 5 ms, murmur2 partitioner), Avro encoded by hand with the header \`sluice schemas\` prints."
  say "- sluice $(git rev-parse --short HEAD)$([[ -z $(git status --porcelain -- services 2>/dev/null) ]] || echo ' + uncommitted changes'); Kafka $(tr -d '[:space:]' <deploy/kafka/VERSION), Redis $(redis-server --version | sed -nE 's/.* v=([^ ]+).*/\1/p'); $(nproc) CPUs shared by broker, Redis, fanout, api and the load."
} >"$REPORT"
say "report: $REPORT"
