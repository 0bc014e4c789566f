#!/usr/bin/env bash
# Local environment for sluice: a real single-node KRaft Kafka broker (jars from Maven Central,
# since there is no Docker engine here) and a real Redis, both on loopback.
#
#   deploy/env.sh up | down | status | clean | fetch
#   deploy/env.sh kafka-start | kafka-stop | redis-start | redis-stop
#
# Everything it writes stays inside the repo: .cache/ (jars, broker data, pids) and logs/.
# Kafka data survives kafka-stop/kafka-start and down/up; only `clean` deletes it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/deploy/kafka/common.sh"

KAFKA_HOST=127.0.0.1 KAFKA_PORT=9092
REDIS_HOST=127.0.0.1 REDIS_PORT=6379
KAFKA_DATA="$CACHE/kafka-data"
KAFKA_CONF="$CACHE/kafka/server.properties"
KAFKA_PIDFILE="$CACHE/kafka.pid"
REDIS_DIR="$CACHE/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
READY_TIMEOUT=60 STOP_TIMEOUT=30

# Plain TCP probes via bash, so status checks cost no JVM start and need no redis-cli.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
redis_ping() {
  timeout 1 bash -c "exec 3<>/dev/tcp/$REDIS_HOST/$REDIS_PORT && printf 'PING\r\n' >&3 &&
    IFS= read -r reply <&3 && [[ \$reply == +PONG* ]]" 2>/dev/null
}

# The pid of the broker this repo started, if any. The pid file alone is not trusted (pids get
# reused, and a SIGKILLed run leaves it behind); fall back to the process running our config.
kafka_pid() {
  local pid cmd p
  if [[ -f $KAFKA_PIDFILE ]]; then
    pid="$(<"$KAFKA_PIDFILE")"
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
    [[ $cmd == *kafka.Kafka* ]] && { echo "$pid"; return 0; }
  fi
  for p in /proc/[0-9]*; do
    cmd="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)"
    [[ $cmd == *"kafka.Kafka $KAFKA_CONF"* ]] && { echo "${p#/proc/}"; return 0; }
  done
  return 1
}

# One JVM per try; fast-start flags because this runs on every `up`. Listing brokers proves
# both that metadata requests work and that our broker is registered and unfenced, i.e. that
# CreateTopics will find a replica instead of failing with INVALID_REPLICATION_FACTOR.
kafka_ready() {
  timeout 20 java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m \
    -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" -cp "$KAFKA_CP" \
    org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" \
    2>/dev/null | grep -q '(id: 1 '
}

# The broker's last lines are usually shutdown noise; the errors and root causes say why.
kafka_fail() {
  {
    say "kafka: $1"
    grep -hE '\] (ERROR|FATAL) |^Caused by' "$LOGS/kafka.log" 2>/dev/null | tail -n 8 | cut -c1-300
    tail -n 5 "$LOGS/kafka.out" 2>/dev/null
    say "kafka: full log in logs/kafka.log"
  } >&2 || true
  exit 1
}

kafka_start() {
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    say "kafka: already up on $KAFKA_HOST:$KAFKA_PORT"; return 0
  fi
  kafka_fetch
  local t0=$SECONDS java_opts
  mkdir -p "$KAFKA_DATA" "$LOGS" "${KAFKA_CONF%/*}"
  # Regenerated on every start so template edits take effect; the data dir is what persists.
  sed "s|@DATA_DIR@|$KAFKA_DATA|g" "$KAFKA_DIR/server.properties" >"$KAFKA_CONF"
  java_opts=(-Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dkafka.logs.dir="$LOGS")

  # KRaft refuses to start on an unformatted log dir; formatting twice would be refused too.
  if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
    local cluster_id tool_opts=(-Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" -cp "$KAFKA_CP")
    cluster_id="$(java "${tool_opts[@]}" kafka.tools.StorageTool random-uuid)"
    java "${tool_opts[@]}" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$KAFKA_CONF" >>"$LOGS/kafka-format.log" 2>&1 ||
      kafka_fail "formatting $KAFKA_DATA failed (see logs/kafka-format.log)"
    say "kafka: formatted ${KAFKA_DATA#"$REPO"/} (cluster $cluster_id)"
  fi

  # setsid: the broker must outlive this script and not get the Ctrl-C meant for `make`.
  # The background job is not a group leader, so setsid execs in place and $! is java's pid.
  setsid nohup java -Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "${java_opts[@]}" \
    -cp "$KAFKA_CP" kafka.Kafka "$KAFKA_CONF" >"$LOGS/kafka.out" 2>&1 </dev/null 9>&- &
  echo $! >"$KAFKA_PIDFILE"

  local pid=$! deadline=$((SECONDS + READY_TIMEOUT))
  until port_open "$KAFKA_HOST" "$KAFKA_PORT"; do
    kill -0 "$pid" 2>/dev/null || kafka_fail "broker exited during startup"
    ((SECONDS < deadline)) || kafka_fail "port $KAFKA_PORT not open after ${READY_TIMEOUT}s"
    sleep 0.2
  done
  until kafka_ready; do
    kill -0 "$pid" 2>/dev/null || kafka_fail "broker exited during startup"
    ((SECONDS < deadline)) || kafka_fail "broker not ready after ${READY_TIMEOUT}s"
    sleep 0.5
  done
  say "kafka: started on $KAFKA_HOST:$KAFKA_PORT ($KAFKA_VERSION, pid $pid, $((SECONDS - t0))s)"
}

kafka_stop() {
  local pid
  if ! pid="$(kafka_pid)"; then
    rm -f "$KAFKA_PIDFILE"
    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
      say "kafka: $KAFKA_HOST:$KAFKA_PORT is served by a process this script did not start; leaving it"
    else
      say "kafka: not running"
    fi
    return 0
  fi
  # SIGTERM = controlled shutdown: the broker flushes and writes a clean-shutdown marker, so
  # the next start skips log recovery. SIGKILL only if it hangs.
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    say "kafka: did not stop within ${STOP_TIMEOUT}s; killed pid $pid"
  else
    say "kafka: stopped"
  fi
  rm -f "$KAFKA_PIDFILE"
}

redis_start() {
  if redis_ping; then say "redis: already up on $REDIS_HOST:$REDIS_PORT"; return 0; fi
  ensure_redis
  mkdir -p "$REDIS_DIR" "$LOGS"
  # Append-only file, fsync every second, no RDB snapshots: the follower graph and feeds survive
  # a Redis restart (as they must in production, and as the outage tests check), without the
  # fork+disk work of snapshots in the middle of benchmarks.
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
    --dir "$REDIS_DIR" --pidfile "$REDIS_PIDFILE" --logfile "$LOGS/redis.log" \
    --save '' --appendonly yes --appendfsync everysec 9>&-
  local deadline=$((SECONDS + 10))
  until redis_ping; do
    ((SECONDS < deadline)) || { tail -n 20 "$LOGS/redis.log" >&2; die "redis did not answer PING"; }
    sleep 0.1
  done
  say "redis: started on $REDIS_HOST:$REDIS_PORT"
}

redis_stop() {
  if ! redis_ping; then rm -f "$REDIS_PIDFILE"; say "redis: not running"; return 0; fi
  if command -v redis-cli >/dev/null; then
    # A plain SHUTDOWN fsyncs the append-only file, so nothing written before it is lost.
    redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
  fi
  if redis_ping && [[ -f $REDIS_PIDFILE ]]; then kill -TERM "$(<"$REDIS_PIDFILE")" 2>/dev/null || true; fi
  local deadline=$((SECONDS + 10))
  while redis_ping; do
    ((SECONDS < deadline)) || die "redis still answering on $REDIS_HOST:$REDIS_PORT"
    sleep 0.1
  done
  rm -f "$REDIS_PIDFILE"
  say "redis: stopped"
}

ensure_redis() {
  command -v redis-server >/dev/null && return 0
  say "redis: installing redis-server (apt)"
  apt_install redis-server || die "could not install redis-server"
}

# kcat is a convenience for poking at topics by hand; never worth failing `up` over.
ensure_kcat() {
  command -v kcat >/dev/null && return 0
  apt-cache show kcat >/dev/null 2>&1 || return 0
  say "kcat: installing (optional)"
  apt_install kcat || say "kcat: install failed; continuing without it"
}

status() {
  local pid
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    pid="$(kafka_pid || echo "not ours")"
    say "kafka: up on $KAFKA_HOST:$KAFKA_PORT ($KAFKA_VERSION, pid $pid)"
  else
    say "kafka: down"
  fi
  if redis_ping; then say "redis: up on $REDIS_HOST:$REDIS_PORT"; else say "redis: down"; fi
}

usage() {
  sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

# Serialise concurrent invocations (parallel test binaries calling `up`, a test stopping the
# broker while another starts it) so they never race on the pid file or start two brokers.
# Long-lived children get `9>&-` so they do not hold this lock after we exit.
mkdir -p "$CACHE"
exec 9>"$CACHE/env.lock"
flock 9

case "${1:-}" in
  up)          ensure_redis; ensure_kcat; kafka_fetch; redis_start; kafka_start ;;
  down)        kafka_stop; redis_stop ;;
  kafka-start) kafka_start ;;
  kafka-stop)  kafka_stop ;;
  redis-start) redis_start ;;
  redis-stop)  redis_stop ;;
  status)      status ;;
  fetch)       kafka_fetch ;;
  clean)
    kafka_stop; redis_stop
    rm -rf "$KAFKA_DATA" "$KAFKA_CONF" "$REDIS_DIR" "$LOGS"
    say "clean: removed broker data and logs (jar cache kept)" ;;
  *) usage ;;
esac
