#!/usr/bin/env bash
# Bulk-publish throughput: `sluice publish noop --file` against Kafka's own ProducerPerformance
# and kcat, on the same broker, records of the same value size, acks=all + idempotence for all,
# with each compression codec; also the bytes each tool puts on the wire per record.
#
#   make bench-publish                 # N=100000 records per run, 5 rounds, codecs none lz4 zstd
#   N=20000 ROUNDS=1 CODECS=none deploy/bench/publish.sh
#   SLUICE_CONFIG=tuned.toml make bench-publish   # sluice with [kafka.properties] overrides
#
# Env: N (records per run, 100000), ROUNDS (5: sub-second runs on a shared 2-core machine swing
# by a third from one to the next, so the medians need a few), CODECS ("none lz4 zstd"),
# VALUE_BYTES (target record value size, 200), PAUSE (seconds between runs, 2), BOOTSTRAP
# (127.0.0.1:9092), CARGO (cargo), KCAT (kcat; empty skips it).
# Prints a table of medians and sluice's records/s over kcat's per codec (target >= 0.5x), and
# writes them to deploy/bench/results/publish-<date>.md.
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
ROUNDS="${ROUNDS:-5}"
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
say "  $(varint_len "$PAYLOAD") length + $PAYLOAD payload; no tool sends a key or headers (a bulk publish"
say "  sends neither unless a line asks for a key or an expiry)."

# --- 3. input files -------------------------------------------------------------------------
# Each payload starts with its zero-padded line number so records differ, then random letters
# (fixed seed): like ProducerPerformance's payloads, so that no tool's content compresses better
# than another's. kcat's line is the whole value, sluice's payload the value less its fixed part.
JOBS="$TMP/jobs.jsonl" LINES="$TMP/values.txt"
python3 - "$N" "$PAYLOAD" "$VALUE" "$JOBS" "$LINES" <<'PY'
import random, sys
n, payload, value, jobs, lines = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rng = random.Random(14)
letters = bytes(range(ord("a"), ord("z") + 1))
with open(jobs, "wb") as j, open(lines, "wb") as v:
    for i in range(1, n + 1):
        text = b"%010d" % i + bytes(rng.choices(letters, k=value - 10))
        j.write(b'{"payload":"' + text[:payload] + b'"}\n')
        v.write(text + b"\n")
PY
say "input: $(du -h "$JOBS" | cut -f1) of JSON Lines for sluice, $(du -h "$LINES" | cut -f1) of $VALUE-byte lines for kcat"

# --- 4. topics ------------------------------------------------------------------------------
# A fresh, empty topic per tool, codec and round, created before any timing starts so that no
# JVM start-up competes with a measured run. Sluice's via its own `topics ensure` (the path a
# user takes); the peers' via TopicCommand with the same partition count.
read -r -a CODECS <<<"${CODECS:-none lz4 zstd}"
prefix() { echo "${RUN_ID}.r$1.$2."; } # prefix <round> <codec>
say "topics: creating ${RUN_ID}.r<round>.<codec>.{jobs.noop,java,kcat} ($PARTITIONS partitions, RF 1)"
for ((r = 1; r <= ROUNDS; r++)); do
  for codec in "${CODECS[@]}"; do
    SLUICE__TOPICS__PREFIX="$(prefix "$r" "$codec")" "$SLUICE" topics ensure >/dev/null
    peers=(java)
    ((HAVE_KCAT)) && peers+=(kcat)
    for peer in "${peers[@]}"; do
      topic_tool --create --topic "$(prefix "$r" "$codec")$peer" --partitions "$PARTITIONS" \
        --replication-factor 1 >/dev/null
    done
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

# Per codec and tool, one value per round: SL_OWN[codec] = "r1 r2 r3", and so on.
declare -A SL_OWN SL_OWN_S SL_WALL SL_CPU JV_OWN JV_WALL JV_CPU KC_WALL KC_CPU
for ((r = 1; r <= ROUNDS; r++)); do
  for codec in "${CODECS[@]}"; do
    p="$(prefix "$r" "$codec")"

    # sluice: its own figure runs from producer creation to the end of flush; the wall figure
    # adds process start, config loading and producer set-up, like the JVM's below.
    SLUICE__TOPICS__PREFIX="$p" timed "sluice-$r-$codec" "$SLUICE" publish noop --compression "$codec" --file "$JOBS"
    line="$(grep '^published ' "$TMP/sluice-$r-$codec.out")" || die "no summary line from sluice: $(cat "$TMP/sluice-$r-$codec.out")"
    read -r acked own_s own_rate failed < <(sed -E \
      's/^published ([0-9]+) .* in ([0-9.]+) s \(([0-9]+) jobs\/s\); ([0-9]+) failed.*/\1 \2 \3 \4/' <<<"$line")
    ((acked == N && failed == 0)) || die "sluice round $r $codec: $line"
    SL_OWN[$codec]+="$own_rate " SL_OWN_S[$codec]+="$own_s " SL_WALL[$codec]+="$WALL " SL_CPU[$codec]+="$CPU "
    say "round $r $codec sluice: $line | wall ${WALL} s, cpu ${CPU} s"
    sleep "$PAUSE"

    # Kafka's reference producer: one payload of VALUE bytes, no key, as fast as it can.
    # acks=all and idempotence are already Java's defaults; set anyway so the run says so.
    timed "java-$r-$codec" "$TOOL" org.apache.kafka.tools.ProducerPerformance --topic "${p}java" \
      --num-records "$N" --record-size "$VALUE" --throughput -1 \
      --producer-props bootstrap.servers="$BOOTSTRAP" acks=all enable.idempotence=true compression.type="$codec"
    line="$(grep 'records sent' "$TMP/java-$r-$codec.out" | tail -n 1)" || die "no summary from ProducerPerformance"
    read -r sent own_rate < <(sed -E 's/^([0-9]+) records sent, ([0-9.]+) records\/sec.*/\1 \2/' <<<"$line")
    ((sent == N)) || die "ProducerPerformance round $r $codec: $line"
    JV_OWN[$codec]+="$own_rate " JV_WALL[$codec]+="$WALL " JV_CPU[$codec]+="$CPU "
    say "round $r $codec java:   ${line%%, [0-9]* ms avg*} | wall ${WALL} s, cpu ${CPU} s"
    sleep "$PAUSE"

    # kcat: librdkafka's own CLI, one record per line of the file; it exits after delivery.
    if ((HAVE_KCAT)); then
      timed "kcat-$r-$codec" "$KCAT" -P -b "$BOOTSTRAP" -t "${p}kcat" -X acks=all -X enable.idempotence=true \
        -X compression.type="$codec" -l "$LINES"
      # kcat exits 0 even when some deliveries failed; it reports them on stderr.
      ! grep -qi 'fail' "$TMP/kcat-$r-$codec.err" || die "kcat round $r $codec: $(head -n 5 "$TMP/kcat-$r-$codec.err")"
      KC_WALL[$codec]+="$WALL " KC_CPU[$codec]+="$CPU "
      say "round $r $codec kcat:   $N records | wall ${WALL} s, cpu ${CPU} s"
      sleep "$PAUSE"
    fi
  done
done

# --- 6. verification and sizes --------------------------------------------------------------
# Every topic must hold exactly N records: the sum of its partitions' end offsets (topics start
# empty, so end offset = count). One JVM for all of them.
"$TOOL" org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BOOTSTRAP" \
  --topic "${RUN_ID}\\..*" >"$TMP/offsets" 2>"$TMP/offsets.err" || die "GetOffsetShell: $(cat "$TMP/offsets.err")"
count() { awk -F: -v t="$1" '$1 == t { s += $3 } END { print s + 0 }' "$TMP/offsets"; }
partitions() { awk -F: -v t="$1" '$1 == t { n++ } END { print n + 0 }' "$TMP/offsets"; }
verify() { # verify <topic suffix>: prints "9x100000 ok" or dies
  local r t c codec
  for ((r = 1; r <= ROUNDS; r++)); do
    for codec in "${CODECS[@]}"; do
      t="$(prefix "$r" "$codec")$1"
      c="$(count "$t")"
      ((c == N)) || die "topic $t holds $c records, expected $N"
      # Same shape for every tool, also if sluice's topic layout changes under us.
      c="$(partitions "$t")"
      ((c == PARTITIONS)) || die "topic $t has $c partitions, expected $PARTITIONS"
    done
  done
  echo "$((ROUNDS * ${#CODECS[@]}))x$N ok"
}
# One assignment per line: a failed check inside $(...) must stop the script (set -e).
SL_OK="$(verify jobs.noop)"
JV_OK="$(verify java)"
KC_OK="skipped"
if ((HAVE_KCAT)); then KC_OK="$(verify kcat)"; fi

# Bytes on the wire per record: the size of each topic's log on the broker's disk over N. The
# broker writes a producer's record batches as they came (topics keep `compression.type=producer`),
# so this is what the produce requests carried, batch headers included, request framing not.
all_topics="$(awk -F: '{ print $1 }' "$TMP/offsets" | sort -u | paste -sd,)"
"$TOOL" org.apache.kafka.tools.LogDirsCommand --bootstrap-server "$BOOTSTRAP" --describe \
  --topic-list "$all_topics" >"$TMP/logdirs" 2>"$TMP/logdirs.err" || die "LogDirsCommand: $(cat "$TMP/logdirs.err")"
grep '^{' "$TMP/logdirs" | jq -r '.brokers[].logDirs[].partitions[] | "\(.partition) \(.size)"' |
  sed -E 's/-[0-9]+ / /' | awk '{ s[$1] += $2 } END { for (t in s) print t, s[t] }' >"$TMP/sizes"
bytes_per_record() { # bytes_per_record <topic suffix> <codec>: median over the rounds
  local r sizes=()
  for ((r = 1; r <= ROUNDS; r++)); do
    sizes+=("$(awk -v t="$(prefix "$r" "$2")$1" '$1 == t { print $2 }' "$TMP/sizes")")
  done
  [[ -n ${sizes[0]} ]] || die "no log size for $1 ($2)"
  printf '%.0f' "$(calc "$(median "${sizes[@]}") / $N")"
}

# What sluice really put on the wire, read back from its topic: the value must have the size
# the peers were given (kcat also shows the key and headers that come on top).
if ((HAVE_KCAT)); then
  WIRE="$(timeout 20 "$KCAT" -C -b "$BOOTSTRAP" -t "$(prefix 1 "${CODECS[0]}")jobs.noop" -o beginning -c 1 -e -q -f '%S %K %h\n' |
    awk '{ n = split($3, h, ","); hb = 0; for (i = 1; i <= n; i++) hb += length(h[i]) + 1
           printf "value %d B, %s, %d headers ~%d B", $1, ($2 < 0 ? "no key" : "key " $2 " B"), n, hb }')"
else
  WIRE="value $(value_size "$(prefix 1 "${CODECS[0]}")jobs.noop") B (key and headers not shown without kcat)"
fi
[[ $WIRE == "value $VALUE B"* ]] || die "sluice's record value is not $VALUE bytes: $WIRE"

# --- 7. report ------------------------------------------------------------------------------
m() { median $1; } # m "<space-separated values>"
rate() { calc "$N / $1"; }
fmt_rate() { printf '%.0f' "$1"; }
fmt_s() { printf '%.2f' "$1"; }
ratio() { printf '%.2fx' "$(calc "$1 / $2")"; }

header=("codec" "tool" "own s" "own rec/s" "wall s" "wall rec/s" "cpu s" "B/record on the wire" "sluice/peer wall" "arrived")
rows=()
declare -A KCAT_RATIO
for codec in "${CODECS[@]}"; do
  sl_wall_s="$(m "${SL_WALL[$codec]}")"
  sl_wall="$(rate "$sl_wall_s")"
  jv_wall_s="$(m "${JV_WALL[$codec]}")"
  jv_own="$(m "${JV_OWN[$codec]}")"
  rows+=("$codec|sluice publish|$(fmt_s "$(m "${SL_OWN_S[$codec]}")")|$(fmt_rate "$(m "${SL_OWN[$codec]}")")|$(fmt_s "$sl_wall_s")|$(fmt_rate "$sl_wall")|$(fmt_s "$(m "${SL_CPU[$codec]}")")|$(bytes_per_record jobs.noop "$codec")|n/a|$SL_OK")
  rows+=("$codec|ProducerPerformance|$(fmt_s "$(rate "$jv_own")")|$(fmt_rate "$jv_own")|$(fmt_s "$jv_wall_s")|$(fmt_rate "$(rate "$jv_wall_s")")|$(fmt_s "$(m "${JV_CPU[$codec]}")")|$(bytes_per_record java "$codec")|$(ratio "$sl_wall" "$(rate "$jv_wall_s")")|$JV_OK")
  if ((HAVE_KCAT)); then
    kc_wall_s="$(m "${KC_WALL[$codec]}")"
    KCAT_RATIO[$codec]="$(ratio "$sl_wall" "$(rate "$kc_wall_s")")"
    rows+=("$codec|kcat -P|n/a|n/a|$(fmt_s "$kc_wall_s")|$(fmt_rate "$(rate "$kc_wall_s")")|$(fmt_s "$(m "${KC_CPU[$codec]}")")|$(bytes_per_record kcat "$codec")|${KCAT_RATIO[$codec]}|$KC_OK")
  else
    rows+=("$codec|kcat -P|n/a|n/a|n/a|n/a|n/a|n/a|n/a|kcat not found, skipped")
  fi
done

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
verdict() { # sluice vs kcat per codec, against the 0.5x target
  local codec out=()
  ((HAVE_KCAT)) || { echo "sluice/kcat: kcat not found"; return; }
  for codec in "${CODECS[@]}"; do out+=("$codec ${KCAT_RATIO[$codec]}"); done
  echo "sluice/kcat records/s on wall time (target >= 0.50x): $(printf '%s, ' "${out[@]}" | sed 's/, $//')"
}
runs() { # per-run wall times, to judge the noise behind the medians
  local codec
  for codec in "${CODECS[@]}"; do
    printf -- '- %s: sluice %s s; java %s s' "$codec" "${SL_WALL[$codec]% }" "${JV_WALL[$codec]% }"
    if ((HAVE_KCAT)); then printf '; kcat %s s' "${KC_WALL[$codec]% }"; fi
    echo
  done | sed -E 's/([0-9]+\.[0-9]{2})[0-9]*/\1/g'
}

TABLE="$(table)"
VERDICT="$(verdict)"
say ""
say "$TABLE"
say ""
say "$VERDICT"
say "Medians of $ROUNDS rounds. own = the tool's own figure (sluice: producer creation to flush;"
say "ProducerPerformance: first send to last ack); wall = whole process incl. start-up (JVM)."
say "cpu = user+sys seconds of the process. B/record = the topic's log size on the broker / N."
say "sluice record on the wire: $WIRE."

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
  say "**$VERDICT.**"
  say ""
  say "Medians of $ROUNDS rounds; each round runs every codec (${CODECS[*]}) and, per codec, sluice,"
  say "java, kcat, each into its own empty $PARTITIONS-partition topic, acks=all and"
  say "enable.idempotence=true everywhere, \`compression.type\` = the codec (sluice: \`--compression\`)."
  say "*own* is the tool's own figure (sluice: producer creation to flush, incl. JSON parsing and Avro"
  say "encoding; ProducerPerformance: its send loop to the last acknowledgement); *wall* is the whole"
  say "process by the wall clock, incl. start-up (the JVM's ~1 s counts here). *cpu* is user+sys seconds."
  say "*sluice/peer wall* > 1 means sluice is faster. *arrived* sums the topics' end offsets (GetOffsetShell)."
  say "*B/record on the wire* is the topic's log size on the broker (LogDirsCommand) over N: the record"
  say "batches as the producer sent them, batch headers included."
  say ""
  say "Record shapes: value $VALUE bytes for every tool: a 10-digit line number, then random letters"
  say "(ProducerPerformance: random letters). No tool sends a key (sticky partitioning) or headers"
  say "(a bulk record carries nothing a worker can infer, its job id included)."
  say "sluice record read back: $WIRE."
  say ""
  say "Wall seconds per round:"
  say ""
  runs
  say ""
  say "Command: \`make bench-publish\` (N=$N ROUNDS=$ROUNDS VALUE_BYTES=$VALUE_BYTES PAUSE=$PAUSE CODECS=\"${CODECS[*]}\")."
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
