#!/usr/bin/env bash
# Bulk-publish throughput: `sluice publish noop --file` against Kafka's own ProducerPerformance
# and kcat, on the same broker, records of the same value size, acks=all + idempotence for all.
#
#   make bench-publish                 # N=100000 records per run, 3 rounds
#   N=20000 ROUNDS=1 deploy/bench/publish.sh
#   SLUICE_CONFIG=tuned.toml make bench-publish   # sluice with [kafka.properties] overrides
#
# Env: N (records per run, 100000), ROUNDS (3), VALUE_BYTES (target record value size, 200),
# PAUSE (seconds between runs, 2), BOOTSTRAP (127.0.0.1:9092), CARGO (cargo), KCAT (kcat; empty
# skips it).
# Prints a table of medians and writes it to deploy/bench/results/publish-<date>.md.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Resolved before the cd below, so a path relative to the caller's directory still works.
if [[ -n ${SLUICE_CONFIG:-} ]]; then
  [[ -f $SLUICE_CONFIG ]] || { echo "bench: SLUICE_CONFIG=$SLUICE_CONFIG: no such file" >&2; exit 1; }
  SLUICE_CONFIG="$(realpath "$SLUICE_CONFIG")"
  export SLUICE_CONFIG
fi
cd "$REPO"

N="${N:-100000}"
ROUNDS="${ROUNDS:-3}"
VALUE_BYTES="${VALUE_BYTES:-200}"
PAUSE="${PAUSE:-2}"
BOOTSTRAP="${BOOTSTRAP:-127.0.0.1:9092}"
# Same shape as sluice's default (topics.partitions), so every tool writes into the same layout.
PARTITIONS=6
SLUICE="$REPO/target/release/sluice"
TOOL="$REPO/deploy/kafka/tool.sh"
RESULTS="$REPO/deploy/bench/results"
# One id per run: every topic of this run starts with it, so runs never collide and cleanup can
# delete exactly this run's topics with one regex.
RUN_ID="bench$(date +%s)"
TMP="$(mktemp -d)"
TOPICS_CREATED=0
# KCAT= (empty) runs the bench as on a machine without kcat.
KCAT="${KCAT-kcat}"
HAVE_KCAT=0
if [[ -n $KCAT ]] && command -v "$KCAT" >/dev/null; then HAVE_KCAT=1; fi

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
# Float arithmetic in one place: calc '<awk expression>'.
calc() { awk "BEGIN { printf \"%s\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

topic_tool() { "$TOOL" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }

# Runs even when a step fails or on Ctrl-C: bench topics are ~20 MB each and would pile up.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((TOPICS_CREATED)); then
    say "cleanup: deleting topics ${RUN_ID}.*"
    topic_tool --delete --if-exists --topic "${RUN_ID}\\..*" >/dev/null 2>"$TMP/delete.err" ||
      { say "cleanup: topic deletion failed:" >&2; cat "$TMP/delete.err" >&2; }
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $N =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "N and ROUNDS must be positive integers"

# --- 1. broker and binary -------------------------------------------------------------------
# kafka-start is a no-op when the broker is up; a bench on a stopped broker would just fail later.
deploy/env.sh kafka-start
say "build: cargo build --release --bin sluice"
"${CARGO:-cargo}" build --release --bin sluice
[[ -x $SLUICE ]] || die "$SLUICE missing after the build"
export SLUICE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" SLUICE__TOPICS__PARTITIONS="$PARTITIONS"

# --- 2. value size --------------------------------------------------------------------------
# A noop value is C3 01 + 8-byte fingerprint, then the Avro body of the newest Noop schema:
# zigzag-varint(len(payload)) + payload + the other fields at their defaults. Those other fields
# change as the schema evolves (v2 added sleep_ms, v3 fail_attempts), so the fixed part is
# measured, not assumed: publish one job with an empty payload and read its size back.
value_size() { # value_size <topic>: byte length of the topic's first record value
  if ((HAVE_KCAT)); then
    timeout 30 "$KCAT" -C -b "$BOOTSTRAP" -t "$1" -o beginning -c 1 -e -q -f '%S\n'
  else
    # The console consumer prints the raw value bytes and a newline (values may hold \n bytes).
    timeout 60 "$TOOL" org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" \
      --topic "$1" --from-beginning --max-messages 1 --timeout-ms 30000 2>/dev/null |
      wc -c | awk '{ print $1 - 1 }'
  fi
}
TOPICS_CREATED=1
topic_tool --create --topic "${RUN_ID}.cal.jobs.noop" --partitions 1 --replication-factor 1 >/dev/null
SLUICE__TOPICS__PREFIX="${RUN_ID}.cal." "$SLUICE" publish noop --json '{"payload":""}' >/dev/null
EMPTY="$(value_size "${RUN_ID}.cal.jobs.noop")"
if ! [[ $EMPTY =~ ^[0-9]+$ ]] || ((EMPTY <= 10)); then
  die "could not read back the calibration record (got '$EMPTY')"
fi
FIXED=$((EMPTY - 1)) # everything but the payload and its 1-byte length

# Solve for the payload length that gives VALUE_BYTES, or the largest size below it when a
# varint boundary skips it.
varint_len() { local v=$(($1 * 2)) n=1; while ((v >= 128)); do v=$((v >> 7)); n=$((n + 1)); done; echo "$n"; }
value_len() { echo $((FIXED + $(varint_len "$1") + $1)); }
PAYLOAD=$((VALUE_BYTES - FIXED - 1))
((PAYLOAD >= 10)) || die "VALUE_BYTES=$VALUE_BYTES leaves no room for a payload (fixed part $FIXED bytes)"
while (($(value_len "$PAYLOAD") > VALUE_BYTES)); do PAYLOAD=$((PAYLOAD - 1)); done
VALUE="$(value_len "$PAYLOAD")"
say "records: N=$N, value $VALUE bytes = $FIXED fixed (10 header + other fields, measured) +"
say "  $(varint_len "$PAYLOAD") length + $PAYLOAD payload; sluice also sends a 36-byte key (job id) and 4 headers"
say "  (job id, attempt, enqueued-at, traceparent); ProducerPerformance and kcat send no key, no headers."

# --- 3. input files -------------------------------------------------------------------------
# Each payload starts with its zero-padded line number so records differ; nothing is compressed,
# so the content does not affect throughput, only the sizes do.
JOBS="$TMP/jobs.jsonl" LINES="$TMP/values.txt"
awk -v n="$N" -v p="$PAYLOAD" -v v="$VALUE" -v jobs="$JOBS" -v lines="$LINES" 'BEGIN {
  pad = ""; while (length(pad) < v) pad = pad "x"
  for (i = 1; i <= n; i++) {
    id = sprintf("%010d", i)
    printf "{\"payload\":\"%s%s\"}\n", id, substr(pad, 1, p - 10) > jobs
    printf "%s%s\n", id, substr(pad, 1, v - 10) > lines
  }
}'
say "input: $(du -h "$JOBS" | cut -f1) of JSON Lines for sluice, $(du -h "$LINES" | cut -f1) of $VALUE-byte lines for kcat"

# --- 4. topics ------------------------------------------------------------------------------
# A fresh, empty topic per tool and round, created before any timing starts so that no JVM
# start-up competes with a measured run. Sluice's via its own `topics ensure` (the path a user
# takes); the peers' via TopicCommand with the same partition count.
prefix() { echo "${RUN_ID}.r$1."; }
say "topics: creating ${RUN_ID}.r<round>.{jobs.noop,java,kcat} ($PARTITIONS partitions, RF 1)"
for ((r = 1; r <= ROUNDS; r++)); do
  SLUICE__TOPICS__PREFIX="$(prefix "$r")" "$SLUICE" topics ensure >/dev/null
  peers=(java)
  ((HAVE_KCAT)) && peers+=(kcat)
  for peer in "${peers[@]}"; do
    topic_tool --create --topic "$(prefix "$r")$peer" --partitions "$PARTITIONS" \
      --replication-factor 1 >/dev/null
  done
done

# --- 5. runs --------------------------------------------------------------------------------
# timed <name> cmd...: runs cmd with stdout in $TMP/<name>.out; sets WALL (seconds, process start
# to exit, by the wall clock) and CPU (user+sys seconds of the process and its threads).
TIMEFORMAT='%U %S'
timed() {
  local name=$1 t0 t1 rc=0
  shift
  t0="$(date +%s.%N)"
  { time "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; } 2>"$TMP/$name.time" || rc=$?
  t1="$(date +%s.%N)"
  if ((rc != 0)); then
    say "$name failed (exit $rc):" >&2
    tail -n 20 "$TMP/$name.out" "$TMP/$name.err" >&2
    exit 1
  fi
  WALL="$(calc "$t1 - $t0")"
  CPU="$(awk '{ print $1 + $2 }' "$TMP/$name.time")"
}

SL_OWN=() SL_OWN_S=() SL_WALL=() SL_CPU=() JV_OWN=() JV_WALL=() JV_CPU=() KC_WALL=() KC_CPU=()
for ((r = 1; r <= ROUNDS; r++)); do
  p="$(prefix "$r")"

  # sluice: its own figure runs from producer creation to the end of flush; the wall figure
  # adds process start, config loading and producer set-up, like the JVM's below.
  SLUICE__TOPICS__PREFIX="$p" timed "sluice-$r" "$SLUICE" publish noop --file "$JOBS"
  line="$(grep '^published ' "$TMP/sluice-$r.out")" || die "no summary line from sluice: $(cat "$TMP/sluice-$r.out")"
  read -r acked own_s own_rate failed < <(sed -E \
    's/^published ([0-9]+) .* in ([0-9.]+) s \(([0-9]+) jobs\/s\); ([0-9]+) failed.*/\1 \2 \3 \4/' <<<"$line")
  ((acked == N && failed == 0)) || die "sluice round $r: $line"
  SL_OWN+=("$own_rate") SL_OWN_S+=("$own_s") SL_WALL+=("$WALL") SL_CPU+=("$CPU")
  say "round $r sluice: $line | wall ${WALL} s, cpu ${CPU} s"
  sleep "$PAUSE"

  # Kafka's reference producer: one payload of VALUE bytes, no key, as fast as it can.
  # acks=all and idempotence are already Java's defaults; set anyway so the run says so.
  timed "java-$r" "$TOOL" org.apache.kafka.tools.ProducerPerformance --topic "${p}java" \
    --num-records "$N" --record-size "$VALUE" --throughput -1 \
    --producer-props bootstrap.servers="$BOOTSTRAP" acks=all enable.idempotence=true
  line="$(grep 'records sent' "$TMP/java-$r.out" | tail -n 1)" || die "no summary from ProducerPerformance"
  read -r sent own_rate < <(sed -E 's/^([0-9]+) records sent, ([0-9.]+) records\/sec.*/\1 \2/' <<<"$line")
  ((sent == N)) || die "ProducerPerformance round $r: $line"
  JV_OWN+=("$own_rate") JV_WALL+=("$WALL") JV_CPU+=("$CPU")
  say "round $r java:   ${line%%, [0-9]* ms avg*} | wall ${WALL} s, cpu ${CPU} s"
  sleep "$PAUSE"

  # kcat: librdkafka's own CLI, one record per line of the file; it exits after delivery.
  if ((HAVE_KCAT)); then
    timed "kcat-$r" "$KCAT" -P -b "$BOOTSTRAP" -t "${p}kcat" -X acks=all -X enable.idempotence=true -l "$LINES"
    # kcat exits 0 even when some deliveries failed; it reports them on stderr.
    ! grep -qi 'fail' "$TMP/kcat-$r.err" || die "kcat round $r: $(head -n 5 "$TMP/kcat-$r.err")"
    KC_WALL+=("$WALL") KC_CPU+=("$CPU")
    say "round $r kcat:   $N records | wall ${WALL} s, cpu ${CPU} s"
    if ((r < ROUNDS)); then sleep "$PAUSE"; fi
  fi
done

# --- 6. verification ------------------------------------------------------------------------
# Every topic must hold exactly N records: the sum of its partitions' end offsets (topics start
# empty, so end offset = count). One JVM for all of them.
"$TOOL" org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" \
  --topic "${RUN_ID}\\..*" >"$TMP/offsets" 2>"$TMP/offsets.err" || die "GetOffsetShell: $(cat "$TMP/offsets.err")"
count() { awk -F: -v t="$1" '$1 == t { s += $3 } END { print s + 0 }' "$TMP/offsets"; }
partitions() { awk -F: -v t="$1" '$1 == t { n++ } END { print n + 0 }' "$TMP/offsets"; }
verify() { # verify <topic suffix>: prints "3x100000 ok" or dies
  local r t c
  for ((r = 1; r <= ROUNDS; r++)); do
    t="$(prefix "$r")$1"
    c="$(count "$t")"
    ((c == N)) || die "topic $t holds $c records, expected $N"
    # Same shape for every tool, also if sluice's topic layout changes under us.
    c="$(partitions "$t")"
    ((c == PARTITIONS)) || die "topic $t has $c partitions, expected $PARTITIONS"
  done
  echo "${ROUNDS}x$N ok"
}
# One assignment per line: a failed check inside $(...) must stop the script (set -e).
SL_OK="$(verify jobs.noop)"
JV_OK="$(verify java)"
KC_OK="skipped"
if ((HAVE_KCAT)); then KC_OK="$(verify kcat)"; fi

# What sluice really put on the wire, read back from its topic: the value must have the size
# the peers were given (kcat also shows the key and headers that come on top).
if ((HAVE_KCAT)); then
  WIRE="$(timeout 20 "$KCAT" -C -b "$BOOTSTRAP" -t "$(prefix 1)jobs.noop" -o beginning -c 1 -e -q -f '%S %K %h\n' |
    awk '{ n = split($3, h, ","); hb = 0; for (i = 1; i <= n; i++) hb += length(h[i]) + 1
           printf "value %d B, key %d B, %d headers ~%d B", $1, $2, n, hb }')"
else
  WIRE="value $(value_size "$(prefix 1)jobs.noop") B (key and headers not shown without kcat)"
fi
[[ $WIRE == "value $VALUE B"* ]] || die "sluice's record value is not $VALUE bytes: $WIRE"

# --- 7. report ------------------------------------------------------------------------------
m() { median "$@"; }
rate() { calc "$N / $1"; }
fmt_rate() { printf '%.0f' "$1"; }
fmt_s() { printf '%.2f' "$1"; }
ratio() { printf '%.2fx' "$(calc "$1 / $2")"; }

sl_own="$(m "${SL_OWN[@]}")"
sl_own_s="$(m "${SL_OWN_S[@]}")"
sl_wall_s="$(m "${SL_WALL[@]}")"
sl_wall="$(rate "$sl_wall_s")"
jv_own="$(m "${JV_OWN[@]}")"
jv_wall_s="$(m "${JV_WALL[@]}")"
jv_wall="$(rate "$jv_wall_s")"

header=("tool" "records" "value B" "own s" "own rec/s" "wall s" "wall rec/s" "cpu s" "sluice/peer own" "sluice/peer wall" "arrived")
rows=()
rows+=("sluice publish|$N|$VALUE|$(fmt_s "$sl_own_s")|$(fmt_rate "$sl_own")|$(fmt_s "$sl_wall_s")|$(fmt_rate "$sl_wall")|$(fmt_s "$(m "${SL_CPU[@]}")")|n/a|n/a|$SL_OK")
rows+=("ProducerPerformance|$N|$VALUE|$(fmt_s "$(rate "$jv_own")")|$(fmt_rate "$jv_own")|$(fmt_s "$jv_wall_s")|$(fmt_rate "$jv_wall")|$(fmt_s "$(m "${JV_CPU[@]}")")|$(ratio "$sl_own" "$jv_own")|$(ratio "$sl_wall" "$jv_wall")|$JV_OK")
if ((HAVE_KCAT)); then
  kc_wall_s="$(m "${KC_WALL[@]}")"
  kc_wall="$(rate "$kc_wall_s")"
  rows+=("kcat -P|$N|$VALUE|n/a|n/a|$(fmt_s "$kc_wall_s")|$(fmt_rate "$kc_wall")|$(fmt_s "$(m "${KC_CPU[@]}")")|n/a|$(ratio "$sl_wall" "$kc_wall")|$KC_OK")
else
  rows+=("kcat -P|n/a|n/a|n/a|n/a|n/a|n/a|n/a|n/a|n/a|kcat not found, skipped")
fi

# Markdown with padded cells, so the same text reads well on a terminal and renders on GitHub.
table() {
  { IFS='|'; echo "${header[*]}"; printf '%s\n' "${rows[@]}"; } | awk -F'|' '
    { for (i = 1; i <= NF; i++) { c[NR, i] = $i; l = length($i); if (l > w[i]) w[i] = l } ; nf = NF; nr = NR }
    END {
      for (r = 1; r <= nr; r++) {
        line = "|"; for (i = 1; i <= nf; i++) line = line sprintf(" %-" w[i] "s |", c[r, i]); print line
        if (r == 1) { line = "|"; for (i = 1; i <= nf; i++) { d = ""; while (length(d) < w[i] + 2) d = d "-"; line = line d "|" } print line }
      }
    }'
}
runs() { # per-run figures, to judge the noise behind the medians
  local r
  for ((r = 0; r < ROUNDS; r++)); do
    printf -- '- round %d: sluice %s rec/s own, %.2f s wall; java %s rec/s own, %.2f s wall' \
      $((r + 1)) "${SL_OWN[r]}" "${SL_WALL[r]}" "${JV_OWN[r]}" "${JV_WALL[r]}"
    if ((HAVE_KCAT)); then printf '; kcat %.2f s wall' "${KC_WALL[r]}"; fi
    echo
  done
}

TABLE="$(table)"
say ""
say "$TABLE"
say ""
say "Medians of $ROUNDS alternating rounds. own = the tool's own figure (sluice: producer creation to"
say "flush; ProducerPerformance: first send to last ack); wall = whole process incl. start-up (JVM)."
say "cpu = user+sys seconds of the process. sluice record on the wire: $WIRE."

mkdir -p "$RESULTS"
REPORT="$RESULTS/publish-$(date +%Y-%m-%d-%H%M%S).md"
# Work in progress under services/ makes the commit id alone misleading.
dirty=""
[[ -z $(git status --porcelain -- services Cargo.lock 2>/dev/null) ]] || dirty=" + uncommitted changes"
{
  say "# Bulk publish: sluice vs ProducerPerformance vs kcat — $(date '+%Y-%m-%d %H:%M %Z')"
  say ""
  say "$TABLE"
  say ""
  say "Medians of $ROUNDS alternating rounds (sluice, java, kcat, ...), each tool into its own empty"
  say "$PARTITIONS-partition topic, acks=all and enable.idempotence=true everywhere, no compression."
  say "*own* is the tool's own figure (sluice: producer creation to flush, incl. JSON parsing and Avro"
  say "encoding; ProducerPerformance: its send loop to the last acknowledgement); *wall* is the whole"
  say "process by the wall clock, incl. start-up (the JVM's ~1 s counts here). *cpu* is user+sys seconds."
  say "Ratios > 1 mean sluice is faster. *arrived* sums the topics' end offsets (GetOffsetShell)."
  say ""
  say "Record shapes: value $VALUE bytes for every tool. sluice additionally sends a 36-byte key (the"
  say "job id, murmur2-partitioned, so consecutive records spread over all partitions) and 4 headers;"
  say "ProducerPerformance and kcat send no key (sticky partitioning) and no headers."
  say "sluice record read back: $WIRE."
  say ""
  runs
  say ""
  say "Command: \`make bench-publish\` (N=$N ROUNDS=$ROUNDS VALUE_BYTES=$VALUE_BYTES PAUSE=$PAUSE)."
  say ""
  say "- sluice $(git rev-parse --short HEAD 2>/dev/null || echo '?')$dirty, librdkafka $(grep -A1 'name = "rdkafka-sys"' Cargo.lock | sed -nE 's/.*\+([0-9.]+)".*/\1/p')"
  say "- Kafka $(tr -d '[:space:]' <deploy/kafka/VERSION) broker and ProducerPerformance on $(java -version 2>&1 | head -n 1)"
  if ((HAVE_KCAT)); then say "- kcat $("$KCAT" -V 2>&1 | sed -nE 's/^Version ([^ ]+) .*(librdkafka [^ ]+).*/\1 (\2)/p')"; fi
  say "- $(nproc) CPUs ($(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), the broker on the same machine"
  if [[ -n ${SLUICE_CONFIG:-} ]]; then
    say ""
    say "sluice ran with SLUICE_CONFIG=$SLUICE_CONFIG:"
    say ""
    say '```toml'
    cat "$SLUICE_CONFIG"
    say '```'
  fi
} >"$REPORT"
say "report: ${REPORT#"$REPO"/}"
