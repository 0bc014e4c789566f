#!/usr/bin/env bash
# Retry timing accuracy: how late a retried job starts relative to its due time (`sluice-due-at`),
# read from the worker's own histogram `sluice_retry_lateness_seconds` (observed as a retried job
# starts: now - due_at).
#
#   make bench-retry                       # 3000 noop jobs, 1500 of them fail once; jitter off, then on
#   JITTER=off deploy/bench/retry.sh       # one run only
#   JOBS=6000 RETRIED=3000 WAVES=10 deploy/bench/retry.sh
#
# Each run: a fresh topic prefix, one `sluice worker --kinds noop` (concurrency 32, one retry tier
# of TIER), one warm-up job (proves the worker holds its partitions), then JOBS noop jobs in WAVES
# waves WAVE_GAP seconds apart, every job sleeping 5-20 ms and RETRIED of them (evenly spread)
# failing their first attempt with a retryable error. WAVE_GAP = the tier delay by default, so the
# retries of one wave come due while the next wave floods the main topic: the retries have to
# compete for the worker's permits. Waits for every job to succeed, scrapes /metrics, and reports
# p50/p99 (histogram_quantile-style interpolation), mean and count.
#
# Env: JOBS (3000), RETRIED (1500), WAVES (5), WAVE_GAP (2 s), TIER (2s), JITTER ("off on"),
# CONCURRENCY (32), TIMEOUT (60 s for the last job to succeed after the last wave), SKIP_BUILD (1:
# no cargo build, bench target/release/sluice as it is),
# BOOTSTRAP (127.0.0.1:9092), CARGO (cargo), KCAT (kcat; empty skips the due-time check and the
# status-timestamp estimate).
# Prints a table and writes it to deploy/bench/results/retry-<date>.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

JOBS="${JOBS:-3000}"
RETRIED="${RETRIED:-1500}"
WAVES="${WAVES:-5}"
WAVE_GAP="${WAVE_GAP:-2}"
TIER="${TIER:-2s}"
JITTER="${JITTER:-off on}"
CONCURRENCY="${CONCURRENCY:-32}"
TIMEOUT="${TIMEOUT:-60}"
BOOTSTRAP="${BOOTSTRAP:-127.0.0.1:9092}"
SLUICE="$REPO/target/release/sluice"
TOOL="$REPO/deploy/kafka/tool.sh"
RESULTS="$REPO/deploy/bench/results"
# One id per invocation: every topic, group and Redis key of this bench starts with it, so runs
# never collide and cleanup removes exactly this bench's leftovers.
RUN_ID="benchretry$(date +%s)"
TMP="$(mktemp -d)"
TOPICS_CREATED=0
GROUPS_USED=()
WORKER_PID=""
KCAT="${KCAT-kcat}"
HAVE_KCAT=0
if [[ -n $KCAT ]] && command -v "$KCAT" >/dev/null; then HAVE_KCAT=1; fi

say() { printf '%s\n' "$*"; }
die() { printf 'bench-retry: %s\n' "$*" >&2; exit 1; }
calc() { awk "BEGIN { printf \"%s\", $1 }"; }

topic_tool() { "$TOOL" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }

# Graceful stop (SIGTERM drains in-flight jobs); SIGKILL after 20 s so a hung worker cannot hang
# the bench.
stop_worker() {
  [[ -n $WORKER_PID ]] || return 0
  local pid=$WORKER_PID i
  WORKER_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  say "bench-retry: worker $pid did not stop within 20 s of SIGTERM; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Runs even when a step fails, times out or on Ctrl-C.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_worker
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
  # Job statuses (one hash per job, 7-day TTL by default; shortened below, deleted here anyway).
  if command -v redis-cli >/dev/null; then
    redis-cli --scan --pattern "${RUN_ID}:*" 2>/dev/null | xargs -r -n 500 redis-cli del >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

posint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in JOBS RETRIED WAVES CONCURRENCY TIMEOUT; do posint "${!v}" || die "$v must be a positive integer (got '${!v}')"; done
[[ $WAVE_GAP =~ ^[0-9]+([.][0-9]+)?$ ]] || die "WAVE_GAP must be a number of seconds (got '$WAVE_GAP')"
((RETRIED <= JOBS)) || die "RETRIED ($RETRIED) must not exceed JOBS ($JOBS)"
((WAVES <= JOBS)) || die "WAVES ($WAVES) must not exceed JOBS ($JOBS)"
[[ $TIER =~ ^[0-9]+(ms|s|m)$ ]] || die "TIER must look like 2s, 500ms or 1m (got '$TIER')"
for j in $JITTER; do [[ $j == on || $j == off ]] || die "JITTER must be a list of on/off (got '$JITTER')"; done
[[ -n ${JITTER// /} ]] || die "JITTER is empty"

# --- 1. broker, Redis and binary --------------------------------------------------------------
deploy/env.sh up >/dev/null
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
  say "build: skipped (SKIP_BUILD=1), using $SLUICE as it is"
else
  say "build: cargo build --release --bin sluice"
  "${CARGO:-cargo}" build --release --bin sluice || die "cargo build failed (SKIP_BUILD=1 benches the binary already built)"
fi
[[ -x $SLUICE ]] || die "$SLUICE missing"

export SLUICE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" SLUICE__TOPICS__PARTITIONS=6
export SLUICE__REDIS__KEY_PREFIX="${RUN_ID}:" SLUICE__REDIS__STATUS_TTL="1h"
export SLUICE__RETRY__TIERS="$TIER" SLUICE__RETRY__MAX_ATTEMPTS=5
export SLUICE__WORKER__CONCURRENCY="$CONCURRENCY" SLUICE__WORKER__DRAIN_TIMEOUT=10s
export SLUICE__LOG__LEVEL=warn

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- 2. input ---------------------------------------------------------------------------------
# Job i (1-based) fails its first attempt when floor(i*R/N) steps up: exactly RETRIED failing jobs,
# evenly interleaved with the others. sleep_ms uniform in 5..20 from a fixed seed, so every run
# gets the same jobs. Wave w holds lines ((w-1)*N/W, w*N/W].
awk -v n="$JOBS" -v r="$RETRIED" -v waves="$WAVES" -v dir="$TMP" 'BEGIN {
  srand(42)
  for (i = 1; i <= n; i++) {
    fail = (int(i * r / n) != int((i - 1) * r / n)) ? 1 : 0
    w = int((i - 1) * waves / n) + 1
    printf "{\"payload\":\"bench-%06d\",\"sleep_ms\":%d,\"fail_attempts\":%d}\n", i, 5 + int(rand() * 16), fail > (dir "/wave-" w ".jsonl")
  }
}'
got="$(cat "$TMP"/wave-*.jsonl | grep -c '"fail_attempts":1')"
((got == RETRIED)) || die "input has $got failing jobs, expected $RETRIED"

# --- 3. metrics helpers -----------------------------------------------------------------------
scrape() { curl -sf --max-time 5 "http://127.0.0.1:$PORT/metrics"; }
# metric <file> <name> <label filter regex>: the sum of the matching samples (0 if none).
metric() {
  awk -v name="$2" -v filt="$3" '
    { split($0, a, /[{ ]/) }
    a[1] == name && $0 ~ filt { s += $NF }
    END { printf "%d", s + 0 }' "$1"
}
finished() { metric "$1" sluice_jobs_finished_total "outcome=\"$2\""; }

# histogram <metrics file>: "le cumulative" lines of sluice_retry_lateness_seconds{kind="noop"},
# ascending, +Inf last.
histogram() {
  grep -E '^sluice_retry_lateness_seconds_bucket\{' "$1" | grep 'kind="noop"' |
    sed -E 's/.*le="([^"]+)".* ([0-9.eE+-]+)$/\1 \2/' |
    awk '{ le = ($1 == "+Inf") ? 1e300 : $1; print le, $1, $2 }' | sort -g | cut -d' ' -f2-
}
# quantile <q> <histogram file>: "value lower upper" like Prometheus' histogram_quantile: find the
# bucket holding rank q*count, interpolate linearly inside it (lower bound 0 for the first bucket);
# a rank in the +Inf bucket yields the highest finite bound.
quantile() {
  awk -v q="$1" '
    { le[NR] = $1; c[NR] = $2; n = NR }
    END {
      total = c[n]; if (total == 0) { print "nan nan nan"; exit }
      rank = q * total
      for (i = 1; i <= n; i++) if (c[i] >= rank) break
      if (le[i] == "+Inf") { print le[i - 1], le[i - 1], "+Inf"; exit }
      lo = (i == 1) ? 0 : le[i - 1]; prev = (i == 1) ? 0 : c[i - 1]
      v = (c[i] == prev) ? le[i] : lo + (le[i] - lo) * (rank - prev) / (c[i] - prev)
      print v, lo, le[i]
    }' "$2"
}
ms() { calc "$1 * 1000" | xargs printf '%.1f'; }
# bound_ms 0.005 -> "5"; 0.0 -> "0"; +Inf stays.
bound_ms() { if [[ $1 == "+Inf" ]]; then echo "+Inf"; else calc "$1 * 1000" | xargs printf '%g'; fi; }

# exact_check <retry topic> <tsv out>: per-job lateness without the histogram's bucket limits.
# For each retried job: its due time (sluice-due-at of its record in the retry topic, read with
# kcat), its handler sleep (from its payload's line in the input), and the updated_at of its final
# status in Redis (written by the worker right after the successful attempt 2's handler returned).
# start of attempt 2 ~ updated_at - sleep_ms, so lateness ~ updated_at - sleep_ms - due_at. This
# overstates the truth by the attempt's overhead besides the sleep (decode, one Redis write, timer
# granularity: typically 1-2 ms, more on a saturated machine) and is millisecond-granular.
exact_check() {
  timeout 30 "$KCAT" -C -b "$BOOTSTRAP" -t "$1" -o beginning -e -q -J >"$TMP/retry.json" 2>"$TMP/kcat.err" ||
    { echo "kcat: $(head -c 300 "$TMP/kcat.err")"; return 1; }
  python3 - "$TMP/retry.json" "$2" "$SLUICE__REDIS__KEY_PREFIX" "$TMP"/wave-*.jsonl <<'PY'
import json, re, socket, sys
records, out, key_prefix, waves = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
sleep = {}
for path in waves:
    for line in open(path):
        job = json.loads(line)
        sleep[job["payload"]] = job["sleep_ms"]
jobs = []  # (job id, due ms, sleep ms)
for raw in open(records, "rb"):
    text = raw.decode("utf-8", "replace")  # the Avro bytes around the ASCII fields may not be UTF-8
    key = re.search(r'"sluice-job-id","([^"]+)"', text)  # a retry always carries the job's id
    due = re.search(r'"sluice-due-at","([0-9]+)"', text)
    payload = re.search(r"bench-[0-9]{6}", text)
    if not (key and due and payload):
        sys.exit("unparsable retry record: " + text[:200])
    jobs.append((key.group(1), int(due.group(1)), sleep[payload.group(0)]))
# Plain RESP over one pipelined connection: one GET per job.
sock = socket.create_connection(("127.0.0.1", 6379))
def command(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
# A status is one JSON document per job (services/core/src/status.rs).
sock.sendall(b"".join(command("GET", key_prefix + "job:" + j) for j, _, _ in jobs))
reader = sock.makefile("rb")
def reply():
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"*":
        return [reply() for _ in range(int(rest))]
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)[:-2]
        return data.decode()
    if kind == b"-":
        sys.exit("redis: " + rest.decode())
    return rest.decode()
late = []
with open(out, "w") as f:
    f.write("job_id\tdue_ms\tsleep_ms\tupdated_at_ms\tlateness_est_ms\n")
    for job_id, due, slept in jobs:
        doc = json.loads(reply() or "{}")
        status, attempts, updated = doc.get("status"), doc.get("attempts"), doc.get("updated_at")
        if status != "succeeded" or attempts != 2 or updated is None:
            sys.exit("job %s: status %s, attempts %s (expected succeeded after 2)" % (job_id, status, attempts))
        est = int(updated) - slept - due
        late.append(est)
        f.write("%s\t%d\t%d\t%s\t%d\n" % (job_id, due, slept, updated, est))
late.sort()
n = len(late)
rank = lambda q: late[max(0, -(-int(q * n * 1000) // 1000) - 1)]  # nearest rank
open(out + ".sum", "w").write("%d %d %d\n" % (rank(0.5), rank(0.99), late[-1]))
print("%d jobs, p50 %d ms, p90 %d ms, p99 %d ms, max %d ms, mean %.1f ms, min %d ms"
      % (n, rank(0.5), rank(0.9), rank(0.99), late[-1], sum(late) / n, late[0]))
PY
}

# --- 4. runs ----------------------------------------------------------------------------------
ROWS=() DETAILS=()
run() {
  local jitter=$1 prefix="${RUN_ID}.${1}." log="$TMP/worker-$1.log" m="$TMP/metrics-$1.txt"
  local t0 deadline ok retry dl count sum n w line tlast flag=false
  if [[ $jitter == on ]]; then flag=true; fi
  export SLUICE__TOPICS__PREFIX="$prefix" SLUICE__RETRY__JITTER="$flag"
  say ""
  say "=== run: jitter $jitter, tier $TIER, prefix $prefix"
  TOPICS_CREATED=1
  "$SLUICE" topics ensure >"$TMP/ensure-$jitter.out" 2>&1 || die "topics ensure failed: $(tail -n 5 "$TMP/ensure-$jitter.out")"
  GROUPS_USED+=("${prefix}sluice.worker.noop")

  PORT="$(free_port)"
  SLUICE__WORKER__METRICS_LISTEN="127.0.0.1:$PORT" "$SLUICE" worker --kinds noop >"$log" 2>&1 &
  WORKER_PID=$!
  # Metrics up, then one warm-up job through the whole path: once it has succeeded the worker
  # holds every partition, so the waves below are not queued behind the group's first join.
  for ((n = 0; n < 150; n++)); do
    kill -0 "$WORKER_PID" 2>/dev/null || die "worker exited at start-up: $(tail -n 20 "$log")"
    scrape >/dev/null 2>&1 && break
    sleep 0.1
  done
  scrape >/dev/null 2>&1 || die "worker metrics on 127.0.0.1:$PORT not up after 15 s: $(tail -n 20 "$log")"
  "$SLUICE" publish noop --json '{"payload":"warm-up"}' >"$TMP/warmup.out" 2>&1 || die "warm-up publish failed: $(cat "$TMP/warmup.out")"
  deadline=$((SECONDS + 30))
  until scrape >"$m" 2>/dev/null && (($(finished "$m" success) >= 1)); do
    ((SECONDS < deadline)) || die "jitter $jitter: the warm-up job did not succeed within 30 s (worker log: $(tail -n 20 "$log"))"
    kill -0 "$WORKER_PID" 2>/dev/null || die "worker died: $(tail -n 20 "$log")"
    sleep 0.2
  done

  t0="$(date +%s.%N)"
  for ((w = 1; w <= WAVES; w++)); do
    if ((w > 1)); then
      # Waves start WAVE_GAP apart on the clock, whatever the publish itself took.
      sleep "$(calc "($w - 1) * $WAVE_GAP - ($(date +%s.%N) - $t0)" | awk '{ print ($1 > 0) ? $1 : 0 }')"
    fi
    "$SLUICE" publish noop --file "$TMP/wave-$w.jsonl" >"$TMP/pub.out" 2>&1 || die "wave $w publish failed: $(tail -n 5 "$TMP/pub.out")"
    line="$(grep '^published ' "$TMP/pub.out")" || die "no summary from sluice publish: $(tail -n 5 "$TMP/pub.out")"
    [[ $line == *"; 0 failed"* ]] || die "wave $w: $line"
  done
  tlast="$(calc "$(date +%s.%N) - $t0" | xargs printf '%.1f')"
  say "published $JOBS jobs ($RETRIED failing once) in $WAVES waves over ${tlast} s"

  # Every job (and the warm-up) must succeed; the last retries come due TIER after the last wave.
  deadline=$((SECONDS + TIMEOUT))
  while :; do
    scrape >"$m" 2>/dev/null || die "jitter $jitter: cannot scrape http://127.0.0.1:$PORT/metrics (worker log: $(tail -n 20 "$log"))"
    ok="$(finished "$m" success)"
    ((ok >= JOBS + 1)) && break
    kill -0 "$WORKER_PID" 2>/dev/null || die "jitter $jitter: worker died with $ok/$((JOBS + 1)) jobs done: $(tail -n 20 "$log")"
    if ((SECONDS >= deadline)); then
      die "jitter $jitter: TIMEOUT after ${TIMEOUT} s: only $ok of $((JOBS + 1)) jobs succeeded" \
        "(retry outcomes $(finished "$m" retry), dead letters $(finished "$m" dead_letter)," \
        "retries waiting $(metric "$m" sluice_retry_waiting_jobs 'kind="noop"')); worker log: $(tail -n 20 "$log")"
    fi
    sleep 0.25
  done
  local elapsed
  elapsed="$(calc "$(date +%s.%N) - $t0" | xargs printf '%.1f')"
  stop_worker

  retry="$(finished "$m" retry)"
  dl="$(finished "$m" dead_letter)"
  count="$(awk '/^sluice_retry_lateness_seconds_count\{/ && /kind="noop"/ { print $NF }' "$m")"
  sum="$(awk '/^sluice_retry_lateness_seconds_sum\{/ && /kind="noop"/ { print $NF }' "$m")"
  [[ -n $count && -n $sum ]] || die "jitter $jitter: no sluice_retry_lateness_seconds{kind=\"noop\"} in /metrics"
  ((dl == 0)) || die "jitter $jitter: $dl jobs were dead-lettered"
  ((retry == RETRIED)) || die "jitter $jitter: $retry jobs went to the retry tier, expected $RETRIED"
  # More observations than retries would mean redelivered retry records (a rebalance): say so.
  ((count == RETRIED)) || say "WARNING: $count lateness observations for $RETRIED retries (redeliveries?)" >&2
  histogram "$m" >"$TMP/hist-$jitter"

  # Independent check of the reference point: due-at minus the retry record's broker timestamp
  # (≈ its produce time) must be the tier delay (jitter off) or within [delay/2, delay] (on).
  local dues="n/a"
  if ((HAVE_KCAT)); then
    dues="$(timeout 30 "$KCAT" -C -b "$BOOTSTRAP" -t "${prefix}jobs.noop.retry.$TIER" -o beginning -e -q \
      -f '%T %h\n' 2>/dev/null | sed -nE 's/^([0-9]+) .*sluice-due-at=([0-9]+).*/\1 \2/p' |
      awk '{ d = $2 - $1; if (n == 0 || d < lo) lo = d; if (n == 0 || d > hi) hi = d; n++ }
           END { if (n) printf "%d records, due-at minus record timestamp %d..%d ms", n, lo, hi; else print "no records read" }')" || dues="kcat failed"
  fi

  # Finer cross-check, independent of the histogram's buckets (see exact_check).
  local exact="n/a"
  if ((HAVE_KCAT)); then
    exact="$(exact_check "${prefix}jobs.noop.retry.$TIER" "$TMP/exact-$jitter.tsv" 2>&1)" || exact="failed: $exact"
  fi

  local p50 p50lo p50hi p99 p99lo p99hi mean maxb
  read -r p50 p50lo p50hi < <(quantile 0.5 "$TMP/hist-$jitter")
  read -r p99 p99lo p99hi < <(quantile 0.99 "$TMP/hist-$jitter")
  mean="$(calc "($count > 0) ? $sum / $count : 0")"
  # The lowest bound with every observation at or below it: the max lateness is at most this.
  maxb="$(awk -v t="$count" '$2 >= t { print $1; exit }' "$TMP/hist-$jitter")"

  say "jitter $jitter: $count retried jobs, lateness p50 $(ms "$p50") ms (bucket $(bound_ms "$p50lo")-$(bound_ms "$p50hi") ms)," \
    "p99 $(ms "$p99") ms (bucket $(bound_ms "$p99lo")-$(bound_ms "$p99hi") ms), mean $(ms "$mean") ms, max ≤ $(bound_ms "$maxb") ms; all $((JOBS + 1)) jobs done $elapsed s after the first wave"
  say "  reference check: $dues"
  say "  estimate from job status timestamps: $exact"
  local est="n/a"
  if [[ -s "$TMP/exact-$jitter.tsv.sum" ]]; then est="$(awk '{ printf "%d / %d / %d", $1, $2, $3 }' "$TMP/exact-$jitter.tsv.sum")"; fi
  ROWS+=("$jitter|$TIER|$count|$(ms "$p50")|($(bound_ms "$p50lo"), $(bound_ms "$p50hi")]|$(ms "$p99")|($(bound_ms "$p99lo"), $(bound_ms "$p99hi")]|$(ms "$mean")|<= $(bound_ms "$maxb")|$est|$elapsed")
  # Per-bucket counts (not cumulative), for the result file.
  DETAILS+=("$(awk -v j="$jitter" 'BEGIN { printf "- jitter %s, observations per bucket (ms):", j }
    { c = $2 - prev; prev = $2; lo = hi; hi = ($1 == "+Inf") ? "+Inf" : $1 * 1000
      if (c > 0) printf " (%s, %s] %d;", (NR == 1 ? 0 : lo), hi, c }' "$TMP/hist-$jitter" | sed 's/;$//')")
  DETAILS+=("  reference check ($KCAT on the retry topic): $dues")
  DETAILS+=("  estimate from job status timestamps (ms, see the note above): $exact")
}

for j in $JITTER; do run "$j"; done

# --- 5. report --------------------------------------------------------------------------------
header=("jitter" "tier" "retried" "p50 ms" "p50 bucket ms" "p99 ms" "p99 bucket ms" "mean ms" "max ms" "status est. p50/p99/max ms" "run s")
table() {
  { IFS='|'; echo "${header[*]}"; printf '%s\n' "${ROWS[@]}"; } | awk -F'|' '
    { for (i = 1; i <= NF; i++) { c[NR, i] = $i; l = length($i); if (l > w[i]) w[i] = l } ; nf = NF; nr = NR }
    END {
      for (r = 1; r <= nr; r++) {
        line = "|"; for (i = 1; i <= nf; i++) line = line sprintf(" %-" w[i] "s |", c[r, i]); print line
        if (r == 1) { line = "|"; for (i = 1; i <= nf; i++) { d = ""; while (length(d) < w[i] + 2) d = d "-"; line = line d "|" } print line }
      }
    }'
}
BOUNDS="$(cut -d' ' -f1 "$TMP/hist-$(awk '{ print $1 }' <<<"$JITTER")" | grep -v Inf | awk '{ printf "%s%g", (NR > 1 ? ", " : ""), $1 * 1000 }')"
TABLE="$(table)"
NOTE="p50, p99, their buckets, mean and max come from the histogram. p50/p99 are interpolated
linearly inside the bucket that holds them (as Prometheus' histogram_quantile does), so only the
bucket column is a hard bound: the histogram cannot tell values apart inside a bucket.
Bucket bounds (ms): $BOUNDS.
max = upper bound of the highest non-empty bucket; mean = _sum/_count (exact). The worker clamps
lateness at 0 (a retry never starts before it is due). run s = first wave to last success.
The status-timestamp estimate is independent of the buckets, per job: updated_at of its final
status in Redis - its sleep_ms - its sluice-due-at, 1 ms granular; it overstates the truth by the
attempt's own overhead (decode, one Redis write: ~1-2 ms)."
say ""
say "$TABLE"
say ""
say "$NOTE"

mkdir -p "$RESULTS"
REPORT="$RESULTS/retry-$(date +%Y-%m-%d-%H%M%S).md"
dirty=""
[[ -z $(git status --porcelain -- services Cargo.lock 2>/dev/null) ]] || dirty=" + uncommitted changes"
{
  say "# Retry timing accuracy — $(date '+%Y-%m-%d %H:%M %Z')"
  say ""
  say "How late a retried job starts after its due time (\`sluice-due-at\`), from the worker's"
  say "\`sluice_retry_lateness_seconds{kind=\"noop\"}\` histogram, scraped after the run."
  say ""
  say "$TABLE"
  say ""
  say "$NOTE"
  say ""
  printf '%s\n' "${DETAILS[@]}"
  say ""
  say "Load: one \`sluice worker --kinds noop\` (concurrency $CONCURRENCY, one retry tier of $TIER, jitter as"
  say "in the table), $JOBS noop jobs sleeping 5-20 ms (uniform), $RETRIED of them (evenly interleaved) failing"
  say "their first attempt with a retryable error; published with \`sluice publish noop --file\` in $WAVES waves"
  say "of $((JOBS / WAVES)) starting $WAVE_GAP s apart, so each wave's retries come due as the next wave arrives"
  say "and have to compete with it for the worker's permits. One warm-up job ran first, so the worker"
  say "already held its partitions. Topics: 6 partitions per topic (sluice's default), fresh per run."
  say ""
  say "Command: \`make bench-retry\` (JOBS=$JOBS RETRIED=$RETRIED WAVES=$WAVES WAVE_GAP=$WAVE_GAP TIER=$TIER JITTER=\"$JITTER\" CONCURRENCY=$CONCURRENCY)."
  say ""
  say "- sluice $(git rev-parse --short HEAD 2>/dev/null || echo '?')$dirty, librdkafka $(grep -A1 'name = "rdkafka-sys"' Cargo.lock | sed -nE 's/.*\+([0-9.]+)".*/\1/p')"
  say "- Kafka $(tr -d '[:space:]' <deploy/kafka/VERSION) broker, Redis $(redis-server --version 2>/dev/null | sed -nE 's/.* v=([^ ]+).*/\1/p')"
  say "- $(nproc) CPUs ($(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), broker, Redis, worker and publisher on the same machine"
} >"$REPORT"
say "report: ${REPORT#"$REPO"/}"
