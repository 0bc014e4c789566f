#!/usr/bin/env bash
# Metrics overhead: what the Prometheus recording on the hot paths costs the worker (per job) and
# the api (per POST /v1/jobs/{kind}), measured two ways on two builds of the same source:
#
#   on   the source as it is (metrics recorded, librdkafka statistics every 15 s, the api's queue
#        health refreshed every 15 s);
#   off  a private copy with the recording compiled out (the api's `track` middleware layer, the
#        published-jobs counter and every `rt.metrics.…` call of the worker's process.rs removed)
#        and run with `statistics.interval.ms = 0` and `api.queue_stats_interval = 24h`.
#
# 1. callgrind (deterministic instruction counts; the machine's noise does not matter): the worker
#    consumes CG_JOBS noop jobs and the api serves CG_SECONDS of wrk POSTs under
#    `valgrind --tool=callgrind`, counters zeroed after a warm-up and dumped at the end. The on
#    dump is attributed to metrics code (prometheus::*, sluice's metrics modules, librdkafka's
#    statistics, the track middleware's body, prometheus code inlined elsewhere); the off dump
#    gives the instructions per job/request without metrics. The on run uses
#    statistics.interval.ms = 1000 so that statistics are measured per emission; they are reported
#    at the 15 s default, apart from the per-job figures.
# 2. A/B by the wall clock, ROUNDS rounds, on and off alternating (on/off, off/on, ...):
#    consume: AB_JOBS noop jobs published up front, one worker (concurrency CONCURRENCY) drains
#      them; jobs/s = (AB_JOBS - 1) / (last - first `updated_at` of the jobs' succeeded statuses
#      in Redis): independent of metrics and of polling.
#    publish: one api, `wrk -t1 -cCONNECTIONS -dAB_SECONDS` POSTing noop jobs (keep-alive), after
#      a 2 s warm-up; requests/s from wrk, every response must be a 202.
#
#   deploy/bench/metrics-overhead.sh                       # both phases, ~7 min after the build
#   PHASES=ab ROUNDS=3 deploy/bench/metrics-overhead.sh
#   SKIP_BUILD=1 PHASES=callgrind deploy/bench/metrics-overhead.sh
#
# Env: PHASES ("callgrind ab"; ab = "consume publish"), CG_JOBS (10000), CG_SECONDS (20), AB_JOBS (100000), AB_SECONDS
# (10), ROUNDS (6), CONNECTIONS (128, wrk: enough to saturate the api here; at 32 it waits on
# librdkafka's linger.ms rather than on the CPU), CONCURRENCY (32, worker), TIMEOUT (120 s for a worker
# to drain its jobs; 5x that under callgrind), SKIP_BUILD (1: bench the binaries of the last build
# as they are), BOOTSTRAP (127.0.0.1:9092), CARGO (cargo).
# Builds (release + line tables, so callgrind can name inlined code; codegen is release's) go to
# target/metrics-overhead/ (source copies src-on/ and src-off/, binaries bin/), never to
# target/release. Writes deploy/bench/results/metrics-overhead-<date>.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
# Each variant brings its own configuration file.
unset SLUICE_CONFIG

PHASES="${PHASES:-callgrind ab}"
CG_JOBS="${CG_JOBS:-10000}"
CG_SECONDS="${CG_SECONDS:-20}"
AB_JOBS="${AB_JOBS:-100000}"
AB_SECONDS="${AB_SECONDS:-10}"
ROUNDS="${ROUNDS:-6}"
CONNECTIONS="${CONNECTIONS:-128}"
CONCURRENCY="${CONCURRENCY:-32}"
TIMEOUT="${TIMEOUT:-120}"
BOOTSTRAP="${BOOTSTRAP:-127.0.0.1:9092}"
OUT="$REPO/target/metrics-overhead"
BIN_ON="$OUT/bin/sluice-on"
BIN_OFF="$OUT/bin/sluice-off"
TOOL="$REPO/deploy/kafka/tool.sh"
RESULTS="$REPO/deploy/bench/results"
# One id per invocation: every topic, group and Redis key of this bench starts with it.
RUN_ID="benchmo$(date +%s)"
TMP="$(mktemp -d)"
TOPICS_CREATED=0
GROUPS_USED=()
ROLE_PID=""

say() { printf '%s\n' "$*"; }
die() { printf 'bench-metrics-overhead: %s\n' "$*" >&2; exit 1; }
calc() { awk "BEGIN { printf \"%s\", $1 }"; }
now() { date +%s.%N; }
topic_tool() { "$TOOL" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }

# Graceful stop (SIGTERM drains); SIGKILL after 60 s (a role under callgrind stops slowly).
stop_role() {
  [[ -n $ROLE_PID ]] || return 0
  local pid=$ROLE_PID i
  ROLE_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  say "bench-metrics-overhead: pid $pid did not stop within 60 s of SIGTERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Runs even when a step fails, times out or on Ctrl-C.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_role
  if ((${#GROUPS_USED[@]})); then
    local args=() g
    for g in "${GROUPS_USED[@]}"; do args+=(--group "$g"); done
    "$TOOL" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$BOOTSTRAP" \
      --delete "${args[@]}" >/dev/null 2>"$TMP/groups.err" ||
      { say "cleanup: consumer group deletion failed (they expire on their own):" >&2; tail -n 3 "$TMP/groups.err" >&2; }
  fi
  if ((TOPICS_CREATED)); then
    say "cleanup: deleting topics ${RUN_ID}.*"
    topic_tool --delete --if-exists --topic "${RUN_ID}\\..*" >/dev/null 2>"$TMP/delete.err" ||
      { say "cleanup: topic deletion failed:" >&2; cat "$TMP/delete.err" >&2; }
  fi
  if command -v redis-cli >/dev/null; then
    redis-cli --scan --pattern "${RUN_ID}:*" 2>/dev/null | xargs -r -n 500 redis-cli del >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

posint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in CG_JOBS CG_SECONDS AB_JOBS AB_SECONDS ROUNDS CONNECTIONS CONCURRENCY TIMEOUT; do
  posint "${!v}" || die "$v must be a positive integer (got '${!v}')"
done
DO_CG=0 DO_CONSUME=0 DO_PUBLISH=0
for p in $PHASES; do
  case $p in
    callgrind) DO_CG=1 ;;
    ab) DO_CONSUME=1 DO_PUBLISH=1 ;;
    consume) DO_CONSUME=1 ;;
    publish) DO_PUBLISH=1 ;;
    *) die "PHASES: unknown phase '$p' (callgrind, ab = consume publish)" ;;
  esac
done
DO_AB=$((DO_CONSUME || DO_PUBLISH))
((DO_CG + DO_AB)) || die "PHASES is empty"
need=(curl jq python3 redis-cli)
((DO_AB)) && need+=(wrk)
((DO_CG)) && need+=(valgrind callgrind_control wrk)
for c in "${need[@]}"; do command -v "$c" >/dev/null || die "$c is required (wrk: apt-get install -y wrk)"; done

# --- 1. environment and the two builds ----------------------------------------------------------
deploy/env.sh up >/dev/null

# stage <dir>: the repo's source files (tracked and untracked, not ignored) as they are now.
stage() {
  mkdir -p "$1"
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$1"
}
# sync <from> <to>: make <to> a copy of <from>, rewriting only files whose content changed (cargo
# then rebuilds only what changed).
sync_tree() {
  local f
  mkdir -p "$2"
  (cd "$1" && find . -type f -print0) | while IFS= read -r -d '' f; do
    cmp -s "$1/$f" "$2/$f" 2>/dev/null || { mkdir -p "$(dirname "$2/$f")"; cp "$1/$f" "$2/$f"; }
  done
  (cd "$2" && find . -type f -print0) | while IFS= read -r -d '' f; do
    [[ -e $1/$f ]] || rm -f "$2/$f"
  done
}
# patch_off <dir>: compile the hot-path recording out. Each edit must match: when the code it
# edits changes, the bench stops here instead of measuring a half-patched build.
patch_off() {
  local d=$1
  perl -0pi -e '$n = s/\s*\.route_layer\(middleware::from_fn_with_state\(\s*state\.clone\(\),\s*metrics::track,?\s*\)\)//g;
    die "services/api/src/lib.rs: the track middleware layer not found ($n matches)\n" unless $n == 1' \
    "$d/services/api/src/lib.rs"
  perl -0pi -e '$n = s/\n\s*state\s*\.metrics\s*\.jobs_published\s*\.with_label_values\([^;]*?\)\s*\.inc\(\);//g;
    die "services/api/src/jobs.rs: the jobs_published increment not found ($n matches)\n" unless $n == 1' \
    "$d/services/api/src/jobs.rs"
  perl -0pi -e '$n = s/\n\s*rt\.metrics\s*\.\w+\s*\.with_label_values\(.*?\)\s*\.(?:inc|dec|observe)\(.*?\);//gs;
    $m = s/\n\s*let started = std::time::Instant::now\(\);//g;
    $k = s/\n\s*observe_end_to_end\(&rt, &message\);//g;
    die "services/worker/src/process.rs: recording calls $n (expected >= 6), handler clock $m, end-to-end call $k (expected 1 each)\n"
      unless $n >= 6 && $m == 1 && $k == 1;
    print STDERR "off: removed $n recording calls from services/worker/src/process.rs\n"' \
    "$d/services/worker/src/process.rs"
  ! grep -q 'rt\.metrics\s*\.\(started\|finished\|in_flight\|handler_seconds\|end_to_end_seconds\)' "$d/services/worker/src/process.rs" ||
    die "services/worker/src/process.rs: recording calls left after the patch (a new formatting?)"
}
build() { # build <source dir> <binary>
  say "build: cargo build --release --bin sluice in ${1#"$REPO"/} (line tables on) -> ${2#"$REPO"/}"
  (cd "$1" && CARGO_PROFILE_RELEASE_DEBUG=line-tables-only "${CARGO:-cargo}" build --release --bin sluice \
    --target-dir "$OUT") >"$TMP/build.log" 2>&1 || { tail -n 30 "$TMP/build.log" >&2; die "cargo build failed in $1"; }
  mkdir -p "$OUT/bin"
  cp "$OUT/release/sluice" "$2"
}
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
  say "build: skipped (SKIP_BUILD=1), using ${BIN_ON#"$REPO"/} and ${BIN_OFF#"$REPO"/} as they are"
else
  stage "$TMP/src-on"
  stage "$TMP/src-off"
  patch_off "$TMP/src-off"
  sync_tree "$TMP/src-on" "$OUT/src-on"
  sync_tree "$TMP/src-off" "$OUT/src-off"
  (cd "$OUT" && diff -ru src-on/services src-off/services >"$TMP/off.diff") || true
  cp "$TMP/off.diff" "$OUT/off.diff"
  build "$OUT/src-on" "$BIN_ON"
  build "$OUT/src-off" "$BIN_OFF"
fi
[[ -x $BIN_ON && -x $BIN_OFF ]] || die "$BIN_ON or $BIN_OFF missing (run once without SKIP_BUILD=1)"
[[ -f $OUT/off.diff ]] && cp "$OUT/off.diff" "$TMP/off.diff"
bin() { if [[ $1 == on ]]; then echo "$BIN_ON"; else echo "$BIN_OFF"; fi; }

export SLUICE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" SLUICE__TOPICS__PARTITIONS=6
export SLUICE__REDIS__STATUS_TTL=1h SLUICE__LOG__LEVEL=warn
export SLUICE__WORKER__CONCURRENCY="$CONCURRENCY" SLUICE__WORKER__DRAIN_TIMEOUT=10s
# A noop job takes microseconds, but under callgrind everything is ~50x slower.
export SLUICE__RETRY__TIMEOUT=60s
# Every /v1 call needs a token: one for this run (publish), accepted through the environment.
set -a
eval "$("$BIN_ON" tokens new --name bench --scope publish --env)" || die "sluice tokens new failed"
set +a
: >"$TMP/on.toml"
printf '[kafka.properties]\n"statistics.interval.ms" = "1000"\n' >"$TMP/on-cg.toml"
printf '[kafka.properties]\n"statistics.interval.ms" = "0"\n\n[api]\nqueue_stats_interval = "24h"\n' >"$TMP/off.toml"
SLUICE_CONFIG="$TMP/off.toml" "$BIN_OFF" config >/dev/null || die "the off configuration does not load"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# The CLI (topics, publish, stats) is the on binary everywhere: it is not what is measured.
ensure_topics() { # ensure_topics <prefix>
  TOPICS_CREATED=1
  SLUICE__TOPICS__PREFIX="$1" "$BIN_ON" topics ensure >"$TMP/ensure.out" 2>&1 ||
    die "topics ensure ($1) failed: $(tail -n 5 "$TMP/ensure.out")"
}
publish_file() { # publish_file <prefix> <key prefix> <file> <count>
  SLUICE__TOPICS__PREFIX="$1" SLUICE__REDIS__KEY_PREFIX="$2" "$BIN_ON" publish noop --file "$3" >"$TMP/pub.out" 2>&1 ||
    die "publish failed: $(tail -n 5 "$TMP/pub.out")"
  grep -q "^published $4 .*; 0 failed" "$TMP/pub.out" || die "publish: $(tail -n 3 "$TMP/pub.out")"
}
pending() { SLUICE__TOPICS__PREFIX="$1" "$BIN_ON" stats --json 2>/dev/null | jq -r '.kinds.noop.pending'; }
# wait_drained <prefix> <timeout s> <what>: until the worker group has committed every noop record.
wait_drained() {
  local deadline=$((SECONDS + $2)) p=""
  while :; do
    p="$(pending "$1")" || p="?"
    [[ $p == 0 ]] && return 0
    kill -0 "$ROLE_PID" 2>/dev/null || die "$3: the worker died with $p jobs pending: $(tail -n 20 "$TMP/role.log")"
    ((SECONDS < deadline)) || die "$3: TIMEOUT after $2 s with $p jobs pending (worker log: $(tail -n 20 "$TMP/role.log"))"
    sleep 0.5
  done
}
wait_http() { # wait_http <url> <timeout s> <what>
  local deadline=$((SECONDS + $2))
  until curl -sf --max-time 2 "$1" >/dev/null 2>&1; do
    kill -0 "$ROLE_PID" 2>/dev/null || die "$3 exited at start-up: $(tail -n 20 "$TMP/role.log")"
    ((SECONDS < deadline)) || die "$3: $1 not up within $2 s: $(tail -n 20 "$TMP/role.log")"
    sleep 0.2
  done
}
# redis_jobs <key prefix>: "count succeeded first_updated_ms last_updated_ms" over <prefix>job:*,
# then deletes those keys (a run leaves up to 100 000 of them).
redis_jobs() {
  python3 - "$1" <<'PY'
import socket, sys
prefix = sys.argv[1]
sock = socket.create_connection(("127.0.0.1", 6379))
reader = sock.makefile("rb")
def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)
def reply():
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [reply() for _ in range(n)]
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else reader.read(n + 2)[:-2].decode()
    if kind == b"-":
        sys.exit("redis: " + rest.decode())
    return rest.decode()
keys, cursor = [], "0"
while True:
    sock.sendall(command("SCAN", cursor, "MATCH", prefix + "job:*", "COUNT", "5000"))
    cursor, batch = reply()
    keys += batch
    if cursor == "0":
        break
sock.sendall(b"".join(command("HMGET", k, "status", "updated_at") for k in keys))
done = [int(u) for s, u in (reply() for _ in keys) if s == "succeeded" and u]
for i in range(0, len(keys), 1000):
    sock.sendall(command("UNLINK", *keys[i:i + 1000]))
    reply()
print(len(keys), len(done), min(done, default=0), max(done, default=0))
PY
}

cat >"$TMP/post.lua" <<LUA
-- One noop job per request, keep-alive; the api answers 202 once Kafka acknowledged the job.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $SLUICE_TOKEN"
wrk.body = '{"payload":"metrics-overhead bench job"}'
LUA
# wrk_run <port> <seconds> <out>: sets REQS RPS BAD (non-2xx + socket errors) P50 P99 (ms).
wrk_run() {
  wrk -t1 -c"$CONNECTIONS" -d"$2s" --timeout 10s --latency -s "$TMP/post.lua" \
    "http://127.0.0.1:$1/v1/jobs/noop" >"$3" 2>&1 || die "wrk failed: $(tail -n 5 "$3")"
  REQS="$(sed -nE 's/^ *([0-9]+) requests in .*/\1/p' "$3")"
  RPS="$(sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p' "$3")"
  BAD="$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$3")"
  P50="$(awk '$1 == "50%" { print $2 }' "$3")"
  P99="$(awk '$1 == "99%" { print $2 }' "$3")"
  [[ -n $REQS && -n $RPS ]] || die "no summary from wrk: $(cat "$3")"
}
# cpu_s <pid>: user+sys CPU seconds of a process (all its threads) so far.
CLK_TCK="$(getconf CLK_TCK)"
cpu_s() { awk -v hz="$CLK_TCK" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# Redis forks for AOF rewrites (auto-aof-rewrite) while a run writes ~100 000 statuses: a fork
# and the rewrite compete with the role for the CPU, so each run records how many happened.
redis_forks() { redis-cli info stats | sed -nE 's/^total_forks:([0-9]+).*/\1/p'; }
to_ms() { # wrk latency (e.g. 812.00us, 1.20ms, 1.02s) -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}

# --- 2. callgrind -------------------------------------------------------------------------------
CG_WINDOWS=()
cg_start() { # cg_start <variant> <tag> <config> <role args...>: valgrind in the background
  local v=$1 tag=$2 cfg=$3
  shift 3
  SLUICE_CONFIG="$cfg" valgrind --tool=callgrind --fair-sched=yes \
    --callgrind-out-file="$TMP/cg-$tag-$v.%p" "$(bin "$v")" "$@" >"$TMP/role.log" 2>&1 &
  ROLE_PID=$!
}
cg_dump() { # cg_dump <tag-variant>: dump the counters since the zeroing; -> $TMP/cg-<tag-variant>.out
  callgrind_control -d "$ROLE_PID" >"$TMP/cgctl.out" 2>&1 || die "callgrind_control -d: $(cat "$TMP/cgctl.out")"
  local f="$TMP/cg-$1.$ROLE_PID.1" i
  for ((i = 0; i < 100; i++)); do [[ -s $f ]] && break; sleep 0.1; done
  [[ -s $f ]] || die "no callgrind dump $f"
  sleep 0.5 # let callgrind finish writing
  mv "$f" "$TMP/cg-$1.out"
}
cg_worker() { # cg_worker <variant>
  local v=$1 prefix="${RUN_ID}.gw$1." kp="${RUN_ID}:gw$1:" port t0 t1 cfg="$TMP/off.toml"
  [[ $v == on ]] && cfg="$TMP/on-cg.toml"
  say "callgrind: worker ($v), $CG_JOBS noop jobs"
  ensure_topics "$prefix"
  GROUPS_USED+=("${prefix}sluice.worker.noop")
  port="$(free_port)"
  SLUICE__TOPICS__PREFIX="$prefix" SLUICE__REDIS__KEY_PREFIX="$kp" SLUICE__WORKER__METRICS_LISTEN="127.0.0.1:$port" \
    cg_start "$v" worker "$cfg" worker --kinds noop
  wait_http "http://127.0.0.1:$port/healthz" 120 "the worker under callgrind"
  # One job through the whole path before counting: the group is joined, connections are up.
  publish_file "$prefix" "$kp" "$TMP/one.jsonl" 1
  wait_drained "$prefix" 120 "callgrind worker $v warm-up"
  callgrind_control -z "$ROLE_PID" >"$TMP/cgctl.out" 2>&1 || die "callgrind_control -z: $(cat "$TMP/cgctl.out")"
  t0="$(now)"
  publish_file "$prefix" "$kp" "$TMP/cg-jobs.jsonl" "$CG_JOBS"
  wait_drained "$prefix" $((TIMEOUT * 5)) "callgrind worker $v"
  # One scrape, as Prometheus would every 15 s: measured separately (category scrape).
  curl -sf --max-time 30 "http://127.0.0.1:$port/metrics" >/dev/null || die "scrape of the worker under callgrind failed"
  t1="$(now)"
  cg_dump "worker-$v"
  stop_role
  CG_WINDOWS+=("worker-$v $(calc "$t1 - $t0")")
  say "  $(calc "$t1 - $t0" | xargs printf '%.1f') s counted"
}
cg_api() { # cg_api <variant>
  local v=$1 prefix="${RUN_ID}.ga$1." kp="${RUN_ID}:ga$1:" port t0 t1 cfg="$TMP/off.toml"
  [[ $v == on ]] && cfg="$TMP/on-cg.toml"
  say "callgrind: api ($v), wrk -c$CONNECTIONS for $CG_SECONDS s"
  ensure_topics "$prefix"
  port="$(free_port)"
  SLUICE__TOPICS__PREFIX="$prefix" SLUICE__REDIS__KEY_PREFIX="$kp" SLUICE__API__LISTEN="127.0.0.1:$port" \
    cg_start "$v" api "$cfg" api
  wait_http "http://127.0.0.1:$port/healthz" 120 "the api under callgrind"
  wrk_run "$port" 3 "$TMP/wrk-warm.out"
  ((BAD == 0)) || die "callgrind api $v warm-up: $BAD failed requests: $(cat "$TMP/wrk-warm.out")"
  callgrind_control -z "$ROLE_PID" >"$TMP/cgctl.out" 2>&1 || die "callgrind_control -z: $(cat "$TMP/cgctl.out")"
  t0="$(now)"
  wrk_run "$port" "$CG_SECONDS" "$TMP/wrk-cg-$v.out"
  ((BAD == 0)) || die "callgrind api $v: $BAD failed requests: $(cat "$TMP/wrk-cg-$v.out")"
  curl -sf --max-time 30 "http://127.0.0.1:$port/metrics" >/dev/null || die "scrape of the api under callgrind failed"
  t1="$(now)"
  cg_dump "api-$v"
  stop_role
  CG_WINDOWS+=("api-$v $(calc "$t1 - $t0")")
  say "  $REQS requests ($RPS/s under callgrind), $(calc "$t1 - $t0" | xargs printf '%.1f') s counted"
}

printf '{"payload":"warm-up"}\n' >"$TMP/one.jsonl"
awk -v n="$CG_JOBS" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"payload\":\"cg-%07d\"}\n", i }' >"$TMP/cg-jobs.jsonl"
awk -v n="$AB_JOBS" 'BEGIN { for (i = 1; i <= n; i++) printf "{\"payload\":\"ab-%07d\"}\n", i }' >"$TMP/ab-jobs.jsonl"

if ((DO_CG)); then
  for v in on off; do cg_worker "$v"; done
  for v in on off; do cg_api "$v"; done
fi

# --- 3. A/B by the wall clock -------------------------------------------------------------------
: >"$TMP/consume.tsv"
: >"$TMP/publish.tsv"
ab_consume() { # ab_consume <variant> <round>
  local v=$1 r=$2 prefix="${RUN_ID}.c$2$1." kp="${RUN_ID}:c$2$1:" port t0 t1 n ok first last rate cpu forks
  publish_file "$prefix" "$kp" "$TMP/ab-jobs.jsonl" "$AB_JOBS"
  port="$(free_port)"
  forks="$(redis_forks)"
  t0="$(now)"
  SLUICE_CONFIG="$TMP/$v.toml" SLUICE__TOPICS__PREFIX="$prefix" SLUICE__REDIS__KEY_PREFIX="$kp" \
    SLUICE__WORKER__METRICS_LISTEN="127.0.0.1:$port" "$(bin "$v")" worker --kinds noop >"$TMP/role.log" 2>&1 &
  ROLE_PID=$!
  wait_drained "$prefix" "$TIMEOUT" "consume round $r ($v)"
  t1="$(now)"
  cpu="$(cpu_s "$ROLE_PID")"
  forks=$(($(redis_forks) - forks))
  stop_role
  read -r n ok first last < <(redis_jobs "$kp")
  ((n == AB_JOBS && ok == AB_JOBS)) || die "consume round $r ($v): $ok of $AB_JOBS jobs succeeded ($n statuses)"
  ((last > first)) || die "consume round $r ($v): no time span in the statuses"
  rate="$(calc "($AB_JOBS - 1) * 1000 / ($last - $first)")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$rate" "$(calc "($last - $first) / 1000")" "$(calc "$t1 - $t0")" \
    "$(calc "$cpu * 1000000 / $AB_JOBS")" "$forks" >>"$TMP/consume.tsv"
  say "  consume round $r $v: $(printf '%.0f' "$rate") jobs/s (first to last success $(calc "($last - $first) / 1000") s; start to drained $(calc "$t1 - $t0" | xargs printf '%.1f') s; worker cpu ${cpu} s; Redis forked $forks times meanwhile)"
}
ab_publish() { # ab_publish <variant> <round>
  local v=$1 r=$2 prefix="${RUN_ID}.p." kp="${RUN_ID}:p$2$1:" port n ok c0 c1 forks
  port="$(free_port)"
  SLUICE_CONFIG="$TMP/$v.toml" SLUICE__TOPICS__PREFIX="$prefix" SLUICE__REDIS__KEY_PREFIX="$kp" \
    SLUICE__API__LISTEN="127.0.0.1:$port" "$(bin "$v")" api >"$TMP/role.log" 2>&1 &
  ROLE_PID=$!
  wait_http "http://127.0.0.1:$port/healthz" 30 "the api"
  wrk_run "$port" 2 "$TMP/wrk-warm.out"
  ((BAD == 0)) || die "publish round $r ($v) warm-up: $BAD failed requests: $(cat "$TMP/wrk-warm.out")"
  c0="$(cpu_s "$ROLE_PID")"
  forks="$(redis_forks)"
  wrk_run "$port" "$AB_SECONDS" "$TMP/wrk-$r-$v.out"
  c1="$(cpu_s "$ROLE_PID")"
  forks=$(($(redis_forks) - forks))
  stop_role
  ((BAD == 0)) || die "publish round $r ($v): $BAD failed requests: $(cat "$TMP/wrk-$r-$v.out")"
  # Every 202 is a job Kafka acknowledged and the api marked queued in Redis.
  read -r n ok _ < <(redis_jobs "$kp")
  ((n >= REQS)) || die "publish round $r ($v): wrk counted $REQS responses but Redis holds $n queued jobs"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$RPS" "$REQS" "$(to_ms "$P50")" "$(to_ms "$P99")" \
    "$(calc "($c1 - $c0) * 1000000 / $REQS")" "$forks" >>"$TMP/publish.tsv"
  say "  publish round $r $v: $RPS requests/s ($REQS in ${AB_SECONDS} s, p50 $P50, p99 $P99; api cpu $(calc "$c1 - $c0") s; Redis forked $forks times)"
}
if ((DO_AB)); then
  say "A/B: $ROUNDS rounds, on and off alternating; topics first"
  for ((r = 1; r <= ROUNDS && DO_CONSUME; r++)); do
    for v in on off; do
      ensure_topics "${RUN_ID}.c$r$v."
      GROUPS_USED+=("${RUN_ID}.c$r${v}.sluice.worker.noop")
    done
  done
  ((DO_PUBLISH)) && ensure_topics "${RUN_ID}.p."
  order() { if (($1 % 2)); then echo "on off"; else echo "off on"; fi; }
  if ((DO_CONSUME)); then
    say "A/B consume: $AB_JOBS noop jobs per run, one worker, concurrency $CONCURRENCY"
    for ((r = 1; r <= ROUNDS; r++)); do for v in $(order "$r"); do ab_consume "$v" "$r"; done; done
  fi
  if ((DO_PUBLISH)); then
    say "A/B publish: wrk -t1 -c$CONNECTIONS -d${AB_SECONDS}s POST /v1/jobs/noop"
    for ((r = 1; r <= ROUNDS; r++)); do for v in $(order "$r"); do ab_publish "$v" "$r"; done; done
  fi
fi

# --- 4. report ----------------------------------------------------------------------------------
cat >"$TMP/analyze.py" <<'PY'
"""Callgrind attribution to metrics code, and the report's tables."""
import collections, json, os, re, statistics, sys

def parse(path):
    names = {"fn": {}, "fl": {}}
    selfc = collections.Counter()                    # (fn, source file) -> Ir
    arcs = collections.defaultdict(lambda: [0, 0])   # (fn, call-site file, callee) -> [calls, Ir]
    npos, total = 1, 0
    fn = fl = cur = cfn = None
    pending = None
    def name(kind, rest):
        m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
        if not m:
            return rest
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
            return m.group(2)
        return names[kind][m.group(1)]
    with open(path, errors="replace") as f:
        for line in f:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[npos]) if len(parts) > npos else 0
                if pending is not None:
                    a = arcs[(fn, cur, pending[0])]
                    a[0] += pending[1]
                    a[1] += cost
                    pending = None
                else:
                    selfc[(fn, cur)] += cost
                continue
            line = line.rstrip("\n")
            if line.startswith("fn="):
                fn = name("fn", line[3:])
                cur = fl
            elif line.startswith("fl="):
                fl = cur = name("fl", line[3:])
            elif line.startswith(("fi=", "fe=")):
                cur = name("fl", line[3:])
            elif line.startswith(("cfi=", "cfl=")):
                name("fl", line[4:])
            elif line.startswith("cfn="):
                cfn = name("fn", line[4:])
            elif line.startswith("calls="):
                pending = (cfn, int(line[6:].split()[0]))
            elif line.startswith("positions:"):
                npos = len(line.split()[1:])
            elif line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    return total, selfc, arcs

METRIC_TYPES = (r"prometheus::|sluice_api::metrics::ApiMetrics|sluice_worker::metrics::WorkerMetrics"
                r"|sluice_api::queue::QueueMetrics|sluice_core::kafka_stats::KafkaStats")
STATS_FNS = (r"^rd_kafka_stats_emit|rdkafka::client::native_stats_cb|ClientContext>::stats(_raw)?$"
             r"|rdkafka::client::ClientContext::stats(_raw)?$")
PROM_FILE = re.compile(r"/prometheus-[0-9.]+/src/")
SLUICE_METRIC_FILE = re.compile(r"services/[a-z]+/src/(metrics|kafka_stats)\.rs$")
API_METRICS_FILE = re.compile(r"services/api/src/metrics\.rs$")

def subject(fn):
    """The type or path a symbol belongs to."""
    if fn.startswith("core::ptr::drop_in_place<"):
        return fn[len("core::ptr::drop_in_place<"):-1]
    if fn.startswith("<"):
        depth = 0
        for i, ch in enumerate(fn):
            depth += ch == "<"
            depth -= ch == ">"
            if depth == 0:
                return fn[1:i].split(" as ")[0]
    return fn

def lifecycle(fn):  # a clone or drop of something holding metric handles
    return fn.startswith("core::ptr::drop_in_place<") or "Clone>::clone" in fn

def metric_fn(fn):
    if fn is None:
        return False
    if re.search(STATS_FNS, fn):
        return True
    s = subject(fn)
    return bool(re.match(METRIC_TYPES, s) or re.match(
        r"sluice_core::metrics::|sluice_worker::metrics::|sluice_core::kafka_stats::KafkaStats|sluice_api::queue::export"
        # exists only to feed a histogram: reads the enqueued-at header again, then observes
        r"|sluice_worker::process::observe_end_to_end", s))

def category(callee, caller):
    if re.search(STATS_FNS, callee) or "kafka_stats" in callee:
        return "stats"
    if re.search(r"sluice_core::metrics::render|Registry::gather|encoder::|process_collector", callee):
        return "scrape"
    if "queue::export" in callee or re.search(r"QueueMetrics(>)?::set", callee):
        return "queue"
    if lifecycle(callee) or lifecycle(caller or ""):
        return "handles"
    return "recording"

def inlined_category(fn, site):
    if lifecycle(fn):
        return "handles"
    return "track" if API_METRICS_FILE.search(site) else "recording"

def analyze(path, unit):
    total, selfc, arcs = parse(path)
    cats = collections.Counter()
    detail = collections.defaultdict(lambda: [0, 0])
    units = 0
    for (caller, site, callee), (n, ir) in arcs.items():
        if callee == unit and caller != unit:
            units += n
        if metric_fn(caller):
            continue  # already inside metrics code: counted with the call that entered it
        if metric_fn(callee):
            c = category(callee, caller)
        elif (site and (PROM_FILE.search(site) or SLUICE_METRIC_FILE.search(site))
              and "poll" not in callee and "Next::run" not in callee):
            # a call made by metrics code inlined elsewhere (hashing, allocation, a clock read); the
            # track middleware's `.await` on the rest of the request (a poll, or the drop of that
            # future when a client goes away) is never counted
            c = inlined_category(caller, site)
        else:
            continue
        cats[c] += ir
        d = detail[(c, callee)]
        d[0] += n
        d[1] += ir
    for (fn, f), ir in selfc.items():
        if metric_fn(fn) or not f:
            continue
        if PROM_FILE.search(f) or SLUICE_METRIC_FILE.search(f):
            c = inlined_category(fn, f)
            cats[c] += ir
            detail[(c, "(inlined into) " + fn)][1] += ir
    def calls(pattern):
        return sum(n for (a, _, b), (n, _) in arcs.items()
                   if re.search(pattern, b) and not re.search(pattern, a or ""))
    return {
        "total": total, "units": units, "cats": dict(cats),
        "emits": calls(r"^rd_kafka_stats_emit_tmr_cb$"),
        "collections": calls(r"^sluice_api::queue::QueueMetrics::set$"),
        "scrapes": calls(r"^sluice_core::metrics::render$"),
        "detail": sorted(([c, w, n, ir] for (c, w), (n, ir) in detail.items()), key=lambda x: -x[3]),
    }

tmp = sys.argv[1]
windows = dict(l.split() for l in sys.argv[2:])
units = {"worker": "sluice_core::codec::SchemaRegistry::decode", "api": "sluice_core::jobs::prepare"}
unit_name = {"worker": "job", "api": "request"}
per_time = ("stats", "queue", "scrape")
hot = ("recording", "handles", "track")
label = {"recording": "recording calls (with_label_values, inc/observe)",
         "handles": "cloning/dropping metric handles held in per-request state",
         "track": "the api's track middleware body (route string, clock, state it takes)"}
def f(x, d=0):
    return f"{x:,.{d}f}".replace(",", " ")
def pct(x):
    return f"{x:.2f} %"

lines, summary = [], {}
cg = {}
for role in ("worker", "api"):
    for v in ("on", "off"):
        p = os.path.join(tmp, f"cg-{role}-{v}.out")
        if os.path.exists(p):
            cg[(role, v)] = analyze(p, units[role])
if cg:
    lines.append("## 1. Instructions (callgrind)")
    lines.append("")
    lines.append("| role | build | units | Ir/unit, all | Ir/unit, per-time work excluded | metrics Ir/unit (hot path) | metrics share |")
    lines.append("|---|---|---|---|---|---|---|")
    for role in ("worker", "api"):
        for v in ("on", "off"):
            a = cg.get((role, v))
            if not a:
                continue
            u = max(a["units"], 1)
            t = sum(a["cats"].get(c, 0) for c in per_time)
            hotc = sum(a["cats"].get(c, 0) for c in hot)
            a["per_unit"] = (a["total"] - t) / u
            a["hot_per_unit"] = hotc / u
            share = pct(100 * hotc / (a["total"] - t)) if v == "on" else "—"
            lines.append(f"| {role} | {v} | {a['units']} {unit_name[role]}s | {f(a['total'] / u)} | {f(a['per_unit'])} | "
                         f"{f(hotc / u) if v == 'on' else '—'} | {share} |")
    lines.append("")
    for role in ("worker", "api"):
        on, off = cg.get((role, "on")), cg.get((role, "off"))
        if on and off:
            d = on["per_unit"] - off["per_unit"]
            summary[f"cg_{role}_delta"] = 100 * d / off["per_unit"]
            summary[f"cg_{role}_attr"] = 100 * on["hot_per_unit"] / on["per_unit"]
            lines.append(f"- **{role}: on − off = {f(d)} Ir per {unit_name[role]} = {pct(100 * d / off['per_unit'])} of the off build's "
                         f"{f(off['per_unit'])}**; attributed to metrics code in the on dump: {f(on['hot_per_unit'])} Ir "
                         f"({pct(summary[f'cg_{role}_attr'])}).")
    lines.append("")
    lines.append("Per-time work (independent of load; not in the per-unit figures above), from the on dumps:")
    lines.append("")
    for role in ("worker", "api"):
        a = cg.get((role, "on"))
        if not a:
            continue
        w = float(windows.get(f"{role}-on", "0") or 0)
        s = a["cats"].get("stats", 0)
        if a["emits"] and w:
            per_emit = s / a["emits"]
            clients = a["emits"] / w  # emissions per second at statistics.interval.ms = 1000
            at15 = s / w / 15
            lines.append(f"- {role}: librdkafka statistics {f(per_emit)} Ir per emission (JSON built by librdkafka, parsed by "
                         f"rdkafka, KafkaStats::record), {clients:.1f} emissions/s at a 1 s interval (one per client) "
                         f"→ {f(at15)} Ir/s at the 15 s default.")
            summary[f"{role}_stats_ir_s"] = at15
        if a["collections"]:
            q = a["cats"].get("queue", 0) / a["collections"]
            lines.append(f"- {role}: queue-health refresh {f(q)} Ir per refresh ({a['collections']} in the window) → "
                         f"{f(q / 15)} Ir/s at the 15 s default.")
            summary[f"{role}_queue_ir_s"] = q / 15
        if a["scrapes"]:
            lines.append(f"- {role}: one /metrics scrape {f(a['cats'].get('scrape', 0) / a['scrapes'])} Ir.")
    lines.append("")
    for role in ("worker", "api"):
        a = cg.get((role, "on"))
        if not a:
            continue
        u = max(a["units"], 1)
        lines.append(f"Where the {role}'s metrics instructions go (on build, per {unit_name[role]}; calls per {unit_name[role]}):")
        lines.append("")
        lines.append("| category | function | calls/unit | Ir/unit |")
        lines.append("|---|---|---|---|")
        for c, w, n, ir in a["detail"]:
            if c in hot and ir / u >= 5:
                lines.append(f"| {c} | `{w[:110]}` | {n / u:.2f} | {f(ir / u)} |")
        lines.append("")

def spread(xs, d=0):
    return f"{min(xs):.{d}f}–{max(xs):.{d}f}"
def ab(rows, col, title, higher_is_better, d=0):
    """One table row: medians, spreads and the cost of metrics, from the medians and per round."""
    by = collections.defaultdict(list)
    rounds = collections.defaultdict(dict)
    for r in rows:
        by[r[1]].append(float(r[col]))
        rounds[r[0]][r[1]] = float(r[col])
    on, off = statistics.median(by["on"]), statistics.median(by["off"])
    # "cost" > 0 means worse with metrics: less throughput, or more CPU per unit
    cost = (lambda a, b: 100 * (b - a) / b) if higher_is_better else (lambda a, b: 100 * (a - b) / b)
    paired = [cost(x["on"], x["off"]) for x in rounds.values() if "on" in x and "off" in x]
    noise_on = 100 * (max(by["on"]) - min(by["on"])) / on
    noise_off = 100 * (max(by["off"]) - min(by["off"])) / off
    summary[title] = (on, off, cost(on, off), statistics.median(paired), min(paired), max(paired))
    lines.append(f"| {title} | {f(on, d)} | {spread(by['on'], d)} ({noise_on:.0f} %) | {f(off, d)} | {spread(by['off'], d)} ({noise_off:.0f} %) "
                 f"| **{cost(on, off):+.1f} %** | {statistics.median(paired):+.1f} % ({min(paired):+.1f} … {max(paired):+.1f}) |")

def tsv(path):
    return [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
consume = tsv(os.path.join(tmp, "consume.tsv"))
publish = tsv(os.path.join(tmp, "publish.tsv"))
if consume or publish:
    lines.append("## 2. On vs off by the wall clock")
    lines.append("")
    lines.append("| measurement | on median | on min–max (spread) | off median | off min–max (spread) | cost of metrics (medians) | per round: median (min … max) |")
    lines.append("|---|---|---|---|---|---|---|")
    if consume:
        ab(consume, 2, "consume, jobs/s (one worker)", True)
        ab(consume, 5, "consume, worker CPU µs per job", False, 1)
    if publish:
        ab(publish, 2, "publish, requests/s (api)", True)
        ab(publish, 6, "publish, api CPU µs per request", False, 1)
    lines.append("")
    lines.append("Cost > 0: slower, or more CPU per unit, with metrics. Spread = (max − min) / median of a variant's"
                 " rounds; per round = the on run against the off run of the same round.")
    lines.append("")
    lines.append("Per round (in the order run):")
    lines.append("")
    if consume:
        lines.append("- consume jobs/s: " + "; ".join(
            f"r{r[0]} {r[1]} {float(r[2]):.0f} ({r[3]} s first→last, {float(r[4]):.1f} s start→drained, {float(r[5]):.1f} µs CPU/job, "
            f"{r[6]} Redis forks)"
            for r in consume))
    if publish:
        lines.append("- publish req/s: " + "; ".join(
            f"r{r[0]} {r[1]} {float(r[2]):.0f} (p50 {r[4]} ms, p99 {r[5]} ms, {float(r[6]):.1f} µs CPU/request, {r[7]} Redis forks)"
            for r in publish))
    lines.append("")
open(os.path.join(tmp, "tables.md"), "w").write("\n".join(lines) + "\n")
json.dump(summary, open(os.path.join(tmp, "summary.json"), "w"))
PY
python3 "$TMP/analyze.py" "$TMP" "${CG_WINDOWS[@]}" || die "analysis failed"
say ""
cat "$TMP/tables.md"

mkdir -p "$RESULTS"
REPORT="$RESULTS/metrics-overhead-$(date +%Y-%m-%d-%H%M%S).md"
dirty=""
[[ -z $(git status --porcelain -- services Cargo.lock 2>/dev/null) ]] || dirty=" + uncommitted changes"
{
  say "# Metrics overhead on the hot paths — $(date '+%Y-%m-%d %H:%M %Z')"
  say ""
  say "Question: do the Prometheus metrics slow the hot paths (target: under 5 %)? Two builds of the"
  say "same source: **on** as it is (recording on, librdkafka statistics every 15 s, the api's queue"
  say "health every 15 s) and **off**, a private copy with the recording compiled out (diff below) run"
  say "with \`statistics.interval.ms = 0\` and \`api.queue_stats_interval = 24h\`. There is no runtime switch."
  say ""
  cat "$TMP/tables.md"
  say "## Method"
  say ""
  say "- Builds: \`CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release --bin sluice --target-dir target/metrics-overhead\`"
  say "  in two copies of the working tree (target/metrics-overhead/src-on, src-off); line tables let callgrind"
  say "  name inlined code and do not change codegen; both builds are used for both phases."
  say "- callgrind: \`valgrind --tool=callgrind --fair-sched=yes sluice worker --kinds noop\` (resp. \`sluice api\`),"
  say "  counters zeroed with \`callgrind_control -z\` after one warm-up job (the worker) or a 3 s wrk warm-up (the api),"
  say "  then $CG_JOBS noop jobs published with \`sluice publish noop --file\` and drained (worker), or"
  say "  \`wrk -t1 -c$CONNECTIONS -d${CG_SECONDS}s\` POST /v1/jobs/noop (api); one /metrics scrape; \`callgrind_control -d\`."
  say "  Units are counted from the dump itself: calls of \`SchemaRegistry::decode\` (one per job) and of"
  say "  \`sluice_core::jobs::prepare\` (one per request). All threads are counted (tokio, librdkafka, redis)."
  say "  The on run uses \`statistics.interval.ms = 1000\` so that statistics are measured per emission."
  say "- Attribution (on dump, no double counting): the inclusive cost of every call from non-metrics code into"
  say "  metrics code — \`prometheus::*\` and drops/clones of its types, sluice's metrics structs (ApiMetrics,"
  say "  WorkerMetrics, QueueMetrics, KafkaStats), \`sluice_core::metrics::render\`, the api's queue exporter,"
  say "  librdkafka's \`rd_kafka_stats_emit_*\` and rdkafka's statistics callback — plus instructions and calls"
  say "  whose source line is in prometheus' sources or a sluice \`metrics.rs\`/\`kafka_stats.rs\` but were inlined"
  say "  into other functions (the body of the \`track\` middleware is inlined into axum's \`FromFn\`; its"
  say "  \`.await\` of the rest of the request is excluded). Per-time work (statistics, queue health, scrapes) is"
  say "  reported per second at the 15 s defaults and kept out of the per-unit figures."
  say "  Instructions are a proxy for CPU time: an atomic increment counts as one instruction but costs more,"
  say "  more so when two threads share the counter's cache line; the wall-clock A/B covers that."
  say "  The difference on − off also includes what attribution misses (inlined \`Arc\`/atomic code whose"
  say "  innermost source line is in core/alloc, the from_fn layer's own future and the AppState clone it"
  say "  takes), and some run-to-run variation of the background threads."
  say "- A/B: $ROUNDS rounds, the order alternating (on/off, off/on, …), one fresh topic prefix per consume run."
  say "  Consume: $AB_JOBS noop jobs (payload ~10 bytes) published up front, then one \`sluice worker --kinds noop\`"
  say "  (concurrency $CONCURRENCY) started; jobs/s = ($AB_JOBS − 1) / (last − first \`updated_at\` of the jobs'"
  say "  succeeded statuses in Redis) — independent of the metrics and of polling; the worker is stopped once"
  say "  \`sluice stats --json\` shows nothing pending. Publish: \`sluice api\` with \`wrk -t1 -c$CONNECTIONS"
  say "  -d${AB_SECONDS}s --latency\` POSTing \`{\"payload\":\"metrics-overhead bench job\"}\` to /v1/jobs/noop after a"
  say "  2 s warm-up (202 after Kafka's acks=all and a Redis write); every response must be a 202 and Redis"
  say "  must hold at least as many queued jobs as wrk counted. CPU: user+sys seconds of the role's process"
  say "  (all threads) from /proc/<pid>/stat — the worker's over its whole life, start-up and group join"
  say "  included, per job; the api's over the measured wrk run, per request."
  say "- Everything (broker, Redis, the role, wrk) shares $(nproc) CPUs; under callgrind the role runs on one."
  say ""
  say "Command: \`deploy/bench/metrics-overhead.sh\` (PHASES=\"$PHASES\" CG_JOBS=$CG_JOBS CG_SECONDS=$CG_SECONDS"
  say "AB_JOBS=$AB_JOBS AB_SECONDS=$AB_SECONDS ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS CONCURRENCY=$CONCURRENCY)."
  say ""
  say "- sluice $(git rev-parse --short HEAD 2>/dev/null || echo '?')$dirty, prometheus $(grep -A1 '^name = "prometheus"' Cargo.lock | sed -nE 's/version = "(.*)"/\1/p'), librdkafka $(grep -A1 'name = "rdkafka-sys"' Cargo.lock | sed -nE 's/.*\+([0-9.]+)".*/\1/p')"
  say "- Kafka $(tr -d '[:space:]' <deploy/kafka/VERSION), Redis $(redis-server --version 2>/dev/null | sed -nE 's/.* v=([^ ]+).*/\1/p'), $(valgrind --version), $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
  say "- $(nproc) CPUs ($(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -n 1))"
  if [[ -s $TMP/off.diff ]]; then
    say ""
    say "The off build's patch (applied by the script to its private copy only):"
    say ""
    say '```diff'
    cat "$TMP/off.diff"
    say '```'
  fi
} >"$REPORT"
say "report: ${REPORT#"$REPO"/}"
