#!/usr/bin/env bash
# Fan-out feeds: push throughput against Redis' own ZADD rate, fan-out latency of one post, and the
# hybrid feed read's latency, in one run against the same Redis.
#
#   make bench-fanout                        # the defaults below, ~30 s plus the build
#   TP_POSTS=100 READS=5000 deploy/bench/fanout.sh
#   SKIP_BUILD=1 deploy/bench/fanout.sh      # bench target/release/sluice as it is
#
# One run: a fresh topic prefix, Redis key prefix and consumer group (benchfan<epoch>); the follower
# graph written straight into Redis (SADD both ways, see below); one `sluice fanout` and two
# `sluice api` (feed cache off, and on); a warm-up post; then
#   1. throughput: TP_POSTS posts by TP_AUTHORS authors with TP_FOLLOWERS distinct followers each,
#      published at once over HTTP; time from the first POST to sluice_fanout_deliveries_total
#      reaching TP_POSTS x TP_FOLLOWERS -> deliveries/s, plus the CPU of the fanout, Redis and api;
#   2. redis-benchmark -P 16 ZADD with random members (one sorted set; and random small sets like
#      feeds) -> ops/s, and the ratio deliveries/s / ZADD ops/s (target >= 0.5);
#   3. latency: LAT_POSTS posts, one at a time, by an author with LAT_FOLLOWERS followers: POST sent
#      -> the last follower's feed (in the fanout's SSCAN order) holds it, polled every 1 ms; and
#      the fanout's own histogram (created_at -> last feed written); the followers' feeds start
#      with older posts, each its own number (see FEED_FILL); after each post, the floor: the same
#      writes as one pipeline of plain ZADDs (Redis's own cost), and the ratio sluice / floor
#      (target p99 <= 1.5; the issue's p99 < 100 ms is reported for information);
#   4. feed reads: a user following RD_AUTHORS authors, RD_CELEBS of them celebrities (10 000
#      followers, pulled on read), each author with RD_POSTS posts through POST /v1/posts; READS
#      sequential keep-alive GET /v1/feed/<user>?limit=LIMIT with the cache off (the merge: target
#      p99 < 5 ms), then again (cache off) for as long as a burst of TP_POSTS pushed posts is being
#      fanned out (the scripts hold Redis ~2 ms each), then with the cache on; client-side and the
#      api's histogram;
# then prints a table, writes deploy/bench/results/fanout-<date>.md and cleans up topics, the
# consumer group and every Redis key of the run (SCAN + UNLINK of its prefix; never FLUSHALL).
#
# Env: TP_AUTHORS (10), TP_FOLLOWERS (9999), TP_POSTS (50), ZADD_N (1000000), LAT_FOLLOWERS (9999),
# LAT_POSTS (200), FEED_FILL (300: the latency followers' feeds start with 0..FEED_FILL older posts
# each, drawn uniformly; 0 starts them empty), RD_AUTHORS (200), RD_CELEBS (5), RD_CELEB_FOLLOWERS (10000, the reader included),
# RD_POSTS (30), READS (2000), LIMIT (50), BATCH_SIZE (125, sluice's social.batch_size default),
# TIMEOUT (60 s for any one wait), IDLE_WAIT (60: seconds to wait for a quiet second on the machine
# before starting, then start anyway; the report says how busy the machine was), SKIP_BUILD (1: no
# cargo build), SLUICE_BIN (bench this binary instead of target/release/sluice, e.g. one built from
# a private copy; implies SKIP_BUILD=1), BOOTSTRAP (127.0.0.1:9092), REDIS_HOST (127.0.0.1),
# REDIS_PORT (6379), REDIS_CLUSTER (1: run everything against the local 3-master Redis Cluster of
# deploy/redis-cluster.sh instead, started if needed; redis-benchmark runs with --cluster and the
# floor sends one pipeline per master, all at once), CARGO (cargo), KEEP_TMP (1: keep the scratch directory with the process logs
# and the phases' JSON).
#
# Why 9 999 and not 10 000 followers: the run uses sluice's default celebrity threshold (10 000),
# and an author with 10 000 followers is a celebrity there (pulled on read, nothing pushed).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

export TP_AUTHORS="${TP_AUTHORS:-10}" TP_FOLLOWERS="${TP_FOLLOWERS:-9999}" TP_POSTS="${TP_POSTS:-50}"
export LAT_FOLLOWERS="${LAT_FOLLOWERS:-9999}" LAT_POSTS="${LAT_POSTS:-200}" FEED_FILL="${FEED_FILL:-300}"
export RD_AUTHORS="${RD_AUTHORS:-200}" RD_CELEBS="${RD_CELEBS:-5}" RD_POSTS="${RD_POSTS:-30}"
export RD_CELEB_FOLLOWERS="${RD_CELEB_FOLLOWERS:-10000}"
export READS="${READS:-2000}" LIMIT="${LIMIT:-50}" TIMEOUT="${TIMEOUT:-60}"
ZADD_N="${ZADD_N:-1000000}"
export IDLE_WAIT="${IDLE_WAIT:-60}"
BOOTSTRAP="${BOOTSTRAP:-127.0.0.1:9092}"
export REDIS_HOST="${REDIS_HOST:-127.0.0.1}" REDIS_PORT="${REDIS_PORT:-6379}"
# The masters of deploy/redis-cluster.sh, when REDIS_CLUSTER=1.
CLUSTER_NODES=(127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003)
if [[ ${REDIS_CLUSTER:-0} == 1 ]]; then
  REDIS_NODES=("${CLUSTER_NODES[@]}")
  REDIS_HOST="${CLUSTER_NODES[0]%:*}" REDIS_PORT="${CLUSTER_NODES[0]#*:}"
  # fanout-load.py reads the seeds from REDIS_CLUSTER.
  REDIS_CLUSTER="$(IFS=,; echo "${CLUSTER_NODES[*]}")"
  export REDIS_CLUSTER
else
  REDIS_NODES=("$REDIS_HOST:$REDIS_PORT")
  unset REDIS_CLUSTER
fi
# sluice's defaults, restated so the bench says what it ran with (and the helper knows the batch).
THRESHOLD=10000
export BATCH_SIZE="${BATCH_SIZE:-125}"
SLUICE="${SLUICE_BIN:-$REPO/target/release/sluice}"
TOOL="$REPO/deploy/kafka/tool.sh"
LOAD="$REPO/deploy/bench/fanout-load.py"
RESULTS="$REPO/deploy/bench/results"
# One id per invocation: every topic, the consumer group and every Redis key of this run start
# with it, so runs never collide and cleanup removes exactly this run's leftovers.
RUN_ID="benchfan$(date +%s)"
export KEY_PREFIX="${RUN_ID}:"
TMP="$(mktemp -d)"
export TMP
TOPICS_CREATED=0
REDIS_USED=0
PIDS=()
T_START=$SECONDS

say() { printf '%s\n' "$*"; }
die() { printf 'bench-fanout: %s\n' "$*" >&2; exit 1; }
rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
# The same command on every Redis of the run (one, or each master of the cluster).
rcli_all() { local node; for node in "${REDIS_NODES[@]}"; do redis-cli -h "${node%:*}" -p "${node#*:}" "$@" || return; done; }
topic_tool() { "$TOOL" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }
logtail() { if [[ -s $1 ]]; then printf '%s log: %s' "$(basename "$1" .log)" "$(tail -n 20 "$1")"; else printf '%s log is empty (SLUICE__LOG__LEVEL=warn)' "$(basename "$1" .log)"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Graceful stop of the processes this script started (by pid); SIGKILL after 10 s.
stop_all() {
  local pid i
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "bench-fanout: process $pid did not stop within 10 s of SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# Runs even when a step fails, times out or on Ctrl-C.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Every step is attempted whatever the others do: no set -e / pipefail exits from here on.
  set +e +o pipefail
  stop_all
  if ((TOPICS_CREATED)); then
    "$TOOL" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOTSTRAP" \
      --delete --group "${RUN_ID}.sluice.fanout" >/dev/null 2>"$TMP/groups.err" ||
      grep -q 'does not exist' "$TMP/groups.err" ||
      { say "cleanup: consumer group deletion failed (it expires on its own):" >&2; tail -n 3 "$TMP/groups.err" >&2; }
    say "cleanup: deleting topics ${RUN_ID}.* and group ${RUN_ID}.sluice.fanout"
    topic_tool --delete --if-exists --topic "${RUN_ID}\\..*" >/dev/null 2>"$TMP/delete.err" ||
      { say "cleanup: topic deletion failed:" >&2; cat "$TMP/delete.err" >&2; }
  fi
  if [[ -n ${AOF_REWRITE_PERCENTAGE:-} ]]; then
    rcli_all CONFIG SET auto-aof-rewrite-percentage "$AOF_REWRITE_PERCENTAGE" >/dev/null ||
      say "cleanup: could not restore Redis's auto-aof-rewrite-percentage to $AOF_REWRITE_PERCENTAGE" >&2
  fi
  if ((REDIS_USED)); then
    # SCAN + UNLINK of this run's prefix only (other tests share this Redis), pipelined.
    python3 "$LOAD" cleanup ||
      say "cleanup: Redis keys ${KEY_PREFIX}* are left; remove them with: redis-cli --scan --pattern '${KEY_PREFIX}*' | xargs -r -n 1000 redis-cli unlink" >&2
  fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then say "kept: $TMP (process logs, per-phase JSON)"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

posint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
[[ $IDLE_WAIT =~ ^[0-9]+$ ]] || die "IDLE_WAIT must be a whole number of seconds (got '$IDLE_WAIT')"
[[ $FEED_FILL =~ ^[0-9]+$ ]] || die "FEED_FILL must be a whole number of posts (got '$FEED_FILL')"
for v in BATCH_SIZE TP_AUTHORS TP_FOLLOWERS TP_POSTS ZADD_N LAT_FOLLOWERS LAT_POSTS RD_AUTHORS RD_CELEBS RD_CELEB_FOLLOWERS RD_POSTS READS LIMIT TIMEOUT; do
  posint "${!v}" || die "$v must be a positive integer (got '${!v}')"
done
((TP_FOLLOWERS < THRESHOLD && LAT_FOLLOWERS < THRESHOLD)) ||
  die "TP_FOLLOWERS and LAT_FOLLOWERS must stay under the celebrity threshold ($THRESHOLD): those authors are pushed"
((RD_CELEBS < RD_AUTHORS)) || die "RD_CELEBS must be less than RD_AUTHORS"
((RD_CELEB_FOLLOWERS >= THRESHOLD)) || die "RD_CELEB_FOLLOWERS must be at least the celebrity threshold ($THRESHOLD)"
((LIMIT <= 200)) || die "LIMIT must be at most 200 (the api's maximum)"
((LIMIT <= RD_AUTHORS * RD_POSTS)) || die "LIMIT must not exceed RD_AUTHORS x RD_POSTS"
command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null ||
  die "redis-benchmark and redis-cli are needed: apt-get install -y redis-tools"

# --- 1. broker, Redis and binary --------------------------------------------------------------
deploy/env.sh up >/dev/null
if [[ -n ${REDIS_CLUSTER:-} ]]; then deploy/redis-cluster.sh up >/dev/null || die "deploy/redis-cluster.sh up failed"; fi
if [[ -n ${SLUICE_BIN:-} ]]; then
  say "build: skipped, using SLUICE_BIN=$SLUICE"
elif [[ ${SKIP_BUILD:-0} == 1 ]]; then
  say "build: skipped (SKIP_BUILD=1), using $SLUICE as it is"
else
  say "build: cargo build --release --bin sluice"
  "${CARGO:-cargo}" build --release --bin sluice || die "cargo build failed (SKIP_BUILD=1 benches the binary already built)"
fi
[[ -x $SLUICE ]] || die "$SLUICE missing"

export SLUICE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" SLUICE__TOPICS__PARTITIONS=6
export SLUICE__TOPICS__PREFIX="${RUN_ID}." SLUICE__REDIS__KEY_PREFIX="$KEY_PREFIX"
if [[ -n ${REDIS_CLUSTER:-} ]]; then
  export SLUICE__REDIS__URL="redis+cluster://$REDIS_CLUSTER"
else
  export SLUICE__REDIS__URL="redis://$REDIS_HOST:$REDIS_PORT"
fi
export SLUICE__SOCIAL__CELEBRITY_THRESHOLD="$THRESHOLD" SLUICE__SOCIAL__BATCH_SIZE="$BATCH_SIZE"
export SLUICE__LOG__LEVEL=warn
# The api's queue-health pass (every 15 s by default) would land in the middle of the read phase.
# Only for a binary that has the setting: the config rejects unknown keys.
STATS_NOTE="without a queue-health pass (this build has none)"
if grep -q queue_stats_interval "$SLUICE"; then
  export SLUICE__API__QUEUE_STATS_INTERVAL=10m
  STATS_NOTE="with SLUICE__API__QUEUE_STATS_INTERVAL=10m so the queue-health pass stays out of the reads"
fi

# Every /v1 call needs a token: SLUICE_TOKEN for fanout-load.py, its hash and scopes for the
# api. Only for a binary that has tokens (SLUICE_BIN may be an older build).
if "$SLUICE" tokens new --help >/dev/null 2>&1; then
  set -a
  eval "$("$SLUICE" tokens new --name bench --scope publish,read --env)" || die "sluice tokens new failed"
  set +a
fi

python3 "$LOAD" idle
say "run: $RUN_ID (topics ${RUN_ID}.*, Redis keys ${KEY_PREFIX}*, group ${RUN_ID}.sluice.fanout)"
TOPICS_CREATED=1
"$SLUICE" topics ensure >"$TMP/ensure.out" 2>&1 || die "topics ensure failed: $(tail -n 5 "$TMP/ensure.out")"

# --- 2. the follower graph, before the fanout starts ------------------------------------------
# Each phase appends ~60 MB to Redis's AOF, so Redis's automatic rewrite (a fork whose child
# rewrites the whole dataset) would start in the middle of one: on two shared cores that child
# takes a core from the processes being measured. It is off for the run (restored on exit), and
# each phase starts by rewriting the AOF instead (fanout-load.py: quiesce).
AOF_REWRITE_PERCENTAGE="$(rcli CONFIG GET auto-aof-rewrite-percentage | sed -n 2p)"
rcli_all CONFIG SET auto-aof-rewrite-percentage 0 >/dev/null
REDIS_USED=1
python3 "$LOAD" graph || die "writing the follower graph failed"
python3 "$LOAD" feeds || die "filling the latency followers' feeds failed"

# --- 3. processes -----------------------------------------------------------------------------
FANOUT_PORT="$(free_port)" API_PORT="$(free_port)" API2_PORT="$(free_port)"
export FANOUT_METRICS="127.0.0.1:$FANOUT_PORT" API="127.0.0.1:$API_PORT" API_CACHED="127.0.0.1:$API2_PORT"
SLUICE__SOCIAL__METRICS_LISTEN="$FANOUT_METRICS" "$SLUICE" fanout >"$TMP/fanout.log" 2>&1 &
FANOUT_PID=$!
PIDS+=("$FANOUT_PID")
SLUICE__API__LISTEN="$API" SLUICE__SOCIAL__FEED_CACHE_TTL=0s "$SLUICE" api >"$TMP/api.log" 2>&1 &
API_PID=$!
PIDS+=("$API_PID")
SLUICE__API__LISTEN="$API_CACHED" SLUICE__SOCIAL__FEED_CACHE_TTL=30s "$SLUICE" api >"$TMP/api-cached.log" 2>&1 &
API2_PID=$!
PIDS+=("$API2_PID")
export FANOUT_PID API_PID
wait_up() { # wait_up <name> <pid> <addr> <log>
  local n
  for ((n = 0; n < 150; n++)); do
    kill -0 "$2" 2>/dev/null || die "$1 exited at start-up: $(tail -n 20 "$4")"
    curl -fsS -o /dev/null "http://$3/metrics" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$1 not serving http://$3/metrics after 15 s: $(tail -n 20 "$4")"
}
wait_up fanout "$FANOUT_PID" "$FANOUT_METRICS" "$TMP/fanout.log"
wait_up api "$API_PID" "$API" "$TMP/api.log"
wait_up "api (cache on)" "$API2_PID" "$API_CACHED" "$TMP/api-cached.log"
python3 "$LOAD" warmup || die "warm-up failed; $(logtail "$TMP/fanout.log")"

# --- 4. phases --------------------------------------------------------------------------------
say ""
say "=== 1. push throughput"
python3 "$LOAD" throughput || die "throughput phase failed; $(logtail "$TMP/fanout.log")"

say ""
say "=== 2. redis-benchmark ZADD, pipelined -P 16"
# Custom-command mode: every __rand_int__ in the command is replaced, per occurrence and per
# request, by a random 12-digit number in [0, -r). So this is ZADD <key> <random score> <random
# member>: 100 000 distinct members into one sorted set (a skiplist, like a large feed).
# On the cluster, redis-benchmark --cluster replaces {tag} in the key with a tag of each master
# and sends every master its share: one sorted set per master there.
BENCH_CLUSTER=() TAG=""
if [[ -n ${REDIS_CLUSTER:-} ]]; then BENCH_CLUSTER=(--cluster) TAG="{tag}"; fi
ZADD_CMD=(zadd "${KEY_PREFIX}${TAG}bench:zset" __rand_int__ member:__rand_int__)
python3 "$LOAD" zadd zadd redis-benchmark "${BENCH_CLUSTER[@]}" -h "$REDIS_HOST" -p "$REDIS_PORT" -P 16 -n "$ZADD_N" -r 100000 --csv "${ZADD_CMD[@]}"
# The fan-out's shape: many small sorted sets (the key is random too: 100 000 feed-like keys).
ZADDF_CMD=(zadd "${KEY_PREFIX}${TAG}bench:feed:__rand_int__" __rand_int__ member:__rand_int__)
python3 "$LOAD" zadd zadd-feeds redis-benchmark "${BENCH_CLUSTER[@]}" -h "$REDIS_HOST" -p "$REDIS_PORT" -P 16 -n "$ZADD_N" -r 100000 --csv "${ZADDF_CMD[@]}"

say ""
say "=== 3. fan-out latency, one post at a time"
python3 "$LOAD" latency || die "latency phase failed; $(logtail "$TMP/fanout.log")"

say ""
say "=== 4. feed reads"
python3 "$LOAD" seed || die "seeding the feed-read phase failed; $(logtail "$TMP/fanout.log")"
python3 "$LOAD" reads "$API" cache-off "$API_PID" || die "reads (cache off) failed; $(logtail "$TMP/api.log")"
python3 "$LOAD" reads "$API" burst "$API_PID" burst || die "reads during a push burst failed; $(logtail "$TMP/fanout.log")"
python3 "$LOAD" reads "$API_CACHED" cache-on "$API2_PID" || die "reads (cache on) failed; $(logtail "$TMP/api-cached.log")"
stop_all
grep -iE 'warn|error' "$TMP/fanout.log" "$TMP/api.log" "$TMP/api-cached.log" | head -n 5 >"$TMP/warnings" || true

# --- 5. report --------------------------------------------------------------------------------
say ""
python3 "$LOAD" report
ELAPSED=$((SECONDS - T_START))
if [[ -s $TMP/warnings ]]; then say ""; say "log warnings:"; cat "$TMP/warnings"; fi

mkdir -p "$RESULTS"
REPORT="$RESULTS/fanout$([[ -n ${REDIS_CLUSTER:-} ]] && echo -cluster)-$(date +%Y-%m-%d-%H%M%S).md"
dirty=""
[[ -z $(git status --porcelain -- services Cargo.lock 2>/dev/null) ]] || dirty=" + uncommitted changes"
{
  say "# Fan-out feeds: push throughput, fan-out latency, feed reads$([[ -n ${REDIS_CLUSTER:-} ]] && echo " on a 3-master Redis Cluster") — $(date '+%Y-%m-%d %H:%M %Z')"
  say ""
  cat "$TMP/table.md"
  say ""
  say "(5 ms) / (yes|no) in brackets: the read target applied while a push burst is fanned out, for"
  say "information (the target itself is for reads alone)."
  say ""
  say "Ratio = deliveries/s ÷ redis-benchmark ZADD ops/s. Not like for like: a"
  say "delivery is a ZADD *plus* a ZCARD (and a ZREMRANGEBYRANK once a feed is over its cap of 1000,"
  say "never in this run: feeds stay small) inside a Lua script of $BATCH_SIZE keys per round trip,"
  say "preceded by an SSCAN for the batch's followers; the ZADD benchmark is one bare command per"
  say "request, 16 per round trip, from 50 connections."
  say ""
  cat "$TMP/details.md"
  say ""
  say "## Setup"
  say ""
  say "- The follower graph was written **straight into Redis** before the fanout started (SADD"
  say "  \`social:followers:<author>\` and \`social:following:<follower>\` both ways, and the $RD_CELEBS celebrities"
  say "  into \`social:celebrities\`, as the fanout does when an author's follow count reaches the threshold)."
  say "  Every post went through the real path: POST /v1/posts -> Kafka -> \`sluice fanout\` -> Redis."
  say "- Throughput: $TP_AUTHORS authors x $TP_FOLLOWERS **distinct** followers (nobody follows two of them),"
  say "  $TP_POSTS posts round-robin, published by 8 concurrent keep-alive HTTP clients; timed from the first"
  say "  POST until \`sluice_fanout_deliveries_total\` (polled every 10 ms over one keep-alive connection) had grown by $((TP_POSTS * TP_FOLLOWERS))."
  say "  CPU = user+sys from /proc (fanout, api) and INFO cpu (Redis) over the same interval."
  say "  9 999 rather than 10 000 followers: with the default threshold of 10 000 an author with"
  say "  10 000 followers is a celebrity (pulled on read)."
  say "- ZADD: \`redis-benchmark -P 16 -n $ZADD_N -r 100000 --csv ${ZADD_CMD[*]}\` (50 clients), and the"
  say "  same with the key randomised too: \`${ZADDF_CMD[*]}\`. Each __rand_int__ is drawn"
  say "  separately per occurrence and request (redis-benchmark 7.0)."
  say "- Latency: $LAT_POSTS posts by one author with $LAT_FOLLOWERS followers, one at a time over one keep-alive"
  say "  connection; after each, the feed of the follower the fanout writes last is polled (ZSCORE, every"
  say "  1 ms) and the next post waits until the fanout has counted this one, plus 20 ms."
  if ((FEED_FILL)); then
    say "  The followers' feeds started with older posts, each feed its own number drawn uniformly from"
    say "  0..$FEED_FILL (FEED_FILL; seeded): feeds that are empty and identical at the start all outgrow"
    say "  their allocator size class on the same post, a cost no population of real feeds pays at once."
  else
    say "  The followers' feeds started empty (FEED_FILL=0)."
  fi
  say "  *Floor*: after each post, the same $LAT_FOLLOWERS writes made the fastest way a client can, side by side"
  say "  with sluice on the same feeds: one pipeline of plain \`ZADD <feed> <score> <member>\`, encoded"
  say "  beforehand, timed from the first byte sent to the last reply read (by Python, which parses"
  say "  the replies as they come), then removed again (\`ZREM\`, not timed). It is what Redis alone needs"
  say "  for one post's deliveries, with no HTTP, Kafka, graph reads, or bound on what is in flight."
  say "  Before the first post, one floor round (reported apart) takes the copy-on-write faults"
  say "  that the AOF rewrite starting the phase (a fork) leaves on every page of the feeds."
  say "- Reads: user \`rd-reader\` follows $RD_AUTHORS authors, $RD_CELEBS of them with $RD_CELEB_FOLLOWERS followers (celebrities at the"
  say "  default threshold $THRESHOLD), each author posted $RD_POSTS times over HTTP (round-robin, so the newest posts"
  say "  mix both kinds). $READS sequential GET /v1/feed/rd-reader?limit=$LIMIT from Python's http.client on one"
  say "  keep-alive connection (client time includes Python's HTTP overhead). Cache off: an api with"
  say "  \`SLUICE__SOCIAL__FEED_CACHE_TTL=0s\`; cache on: a second api with 30 s (one miss, then hits)."
  say "  *During a push burst*: the cache-off reads repeated for as long as another $TP_POSTS x $TP_FOLLOWERS push"
  say "  burst (as in the throughput phase) was being fanned out, i.e. with Redis busy running fan-out scripts."
  say "  Both apis ran $STATS_NOTE."
  say "- One \`sluice fanout\` (batch_size $BATCH_SIZE$( ((BATCH_SIZE == 125)) && echo ", the default"), feed_cap 1000), 6 partitions per topic."
  if [[ -n ${REDIS_CLUSTER:-} ]]; then
    say "- **Redis Cluster**: the ${#REDIS_NODES[@]} masters of \`deploy/redis-cluster.sh\` (${REDIS_NODES[*]}, no replicas),"
    say "  sluice on \`redis+cluster://$REDIS_CLUSTER\`: the fanout writes one ZADD pipeline per master and batch;"
    say "  redis-benchmark ran with --cluster ({tag} in the key: one sorted set per master); the floor sent one"
    say "  pipeline per master, all before reading any reply."
  fi
  say "  Redis appendonly=$(rcli config get appendonly | tail -n 1), appendfsync=$(rcli config get appendfsync | tail -n 1)."
  say ""
  say "Command: \`make bench-fanout\` (TP_AUTHORS=$TP_AUTHORS TP_FOLLOWERS=$TP_FOLLOWERS TP_POSTS=$TP_POSTS ZADD_N=$ZADD_N"
  say "LAT_FOLLOWERS=$LAT_FOLLOWERS LAT_POSTS=$LAT_POSTS FEED_FILL=$FEED_FILL RD_AUTHORS=$RD_AUTHORS RD_CELEBS=$RD_CELEBS RD_POSTS=$RD_POSTS READS=$READS LIMIT=$LIMIT); ${ELAPSED} s in all."
  say ""
  if [[ -n ${SLUICE_BIN:-} ]]; then
    say "- sluice: SLUICE_BIN=$SLUICE_BIN (not built from this checkout); checkout $(git rev-parse --short HEAD 2>/dev/null || echo '?')$dirty"
  else
    say "- sluice $(git rev-parse --short HEAD 2>/dev/null || echo '?')$dirty"
  fi
  say "- librdkafka $(grep -A1 'name = "rdkafka-sys"' Cargo.lock | sed -nE 's/.*\+([0-9.]+)".*/\1/p')"
  say "- Kafka $(tr -d '[:space:]' <deploy/kafka/VERSION) broker, Redis $(redis-server --version 2>/dev/null | sed -nE 's/.* v=([^ ]+).*/\1/p'), redis-benchmark $(redis-benchmark --version | awk '{ print $2 }')"
  say "- $(nproc) CPUs ($(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)): broker, Redis, fanout, apis and load generators on the same machine"
} >"$REPORT"
say ""
say "report: ${REPORT#"$REPO"/} (${ELAPSED} s)"
