#!/usr/bin/env bash
# A local 3-broker Kafka cluster on loopback, from the same jars as deploy/env.sh's single broker
# (deploy/kafka/common.sh), for trying sluice on a replicated cluster and for
# tests/tests/kafka_cluster.rs. Each node is a broker and a controller (KRaft combined mode,
# a 3-voter quorum); internal topics have replication factor 3 and min.insync.replicas 2.
#
#   deploy/kafka-cluster.sh up | down | status | clean
#   deploy/kafka-cluster.sh kill <n>      SIGKILL node n (1-3): a crash, no controlled shutdown
#   deploy/kafka-cluster.sh start <n>     start node n again (waits until it is registered)
#   deploy/kafka-cluster.sh leader <topic> <partition>   the node id leading that partition
#
#   brokers      127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094   (node 1, 2, 3)
#   controllers  127.0.0.1:19192, 19193, 19194
#
# `up` is idempotent and returns once all three brokers are registered and unfenced. Data lives
# in .cache/kafka-cluster/ (kept across down/up; `clean` deletes it), logs in logs/kafka-cluster/.
# Each JVM's heap is capped at KAFKA_CLUSTER_HEAP (default 512m): three brokers share a small
# machine with the single broker, Redis and the tests.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/deploy/kafka/common.sh"

NODES=(1 2 3)
CLUSTER_DIR="$CACHE/kafka-cluster"
CLUSTER_LOGS="$LOGS/kafka-cluster"
CLUSTER_ID_FILE="$CLUSTER_DIR/cluster.id"
HEAP="${KAFKA_CLUSTER_HEAP:-512m}"
READY_TIMEOUT=90 STOP_TIMEOUT=30

broker_port() { echo $((19091 + $1)); }
controller_port() { echo $((19191 + $1)); }
node_conf() { echo "$CLUSTER_DIR/node-$1.properties"; }
node_data() { echo "$CLUSTER_DIR/node-$1"; }
node_pidfile() { echo "$CLUSTER_DIR/node-$1.pid"; }
node_logs() { echo "$CLUSTER_LOGS/node-$1"; }
bootstrap() {
  local n list=()
  for n in "${NODES[@]}"; do list+=("127.0.0.1:$(broker_port "$n")"); done
  (IFS=,; echo "${list[*]}")
}

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

valid_node() {
  [[ ${1:-} =~ ^[1-3]$ ]] || die "node must be 1, 2 or 3 (got '${1:-}')"
}

# The pid of node n if it runs. The pid file alone is not trusted (a SIGKILLed node leaves it
# behind and pids get reused): the process must be running this node's config.
node_pid() {
  local conf pid cmd p
  conf="$(node_conf "$1")"
  if [[ -f $(node_pidfile "$1") ]]; then
    pid="$(<"$(node_pidfile "$1")")"
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
    [[ $cmd == *"kafka.Kafka $conf"* ]] && { echo "$pid"; return 0; }
  fi
  for p in /proc/[0-9]*; do
    cmd="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline" || true)"
    [[ $cmd == *"kafka.Kafka $conf"* ]] && { echo "${p#/proc/}"; return 0; }
  done
  return 1
}

tool() {
  timeout "${TOOL_TIMEOUT:-20}" java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m \
    -Dlog4j2.configurationFile="$KAFKA_DIR/tools-log4j2.properties" -cp "$KAFKA_CP" "$@"
}

# The ids of the brokers that are registered and unfenced, as any live one reports them.
registered() {
  tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "$(bootstrap)" \
    2>/dev/null | sed -n 's/.*(id: \([0-9]*\) rack.*/\1/p' | sort -u
}

node_fail() {
  {
    say "kafka-cluster: node $1: $2"
    grep -hE '\] (ERROR|FATAL) |^Caused by' "$(node_logs "$1")/kafka.log" 2>/dev/null | tail -n 8 | cut -c1-300
    tail -n 5 "$(node_logs "$1").out" 2>/dev/null
    say "kafka-cluster: full log in ${CLUSTER_LOGS#"$REPO"/}/node-$1/kafka.log"
  } >&2 || true
  exit 1
}

voters() {
  local n list=()
  for n in "${NODES[@]}"; do list+=("$n@127.0.0.1:$(controller_port "$n")"); done
  (IFS=,; echo "${list[*]}")
}

# Writes node n's config (every start, so template edits take effect) and formats its log dir
# once, with the cluster id all three share.
prepare_node() {
  local n=$1 conf data
  conf="$(node_conf "$n")" data="$(node_data "$n")"
  mkdir -p "$data" "$(node_logs "$n")"
  sed -e "s|@NODE_ID@|$n|g" -e "s|@VOTERS@|$(voters)|g" -e "s|@DATA_DIR@|$data|g" \
    -e "s|@BROKER_PORT@|$(broker_port "$n")|g" -e "s|@CONTROLLER_PORT@|$(controller_port "$n")|g" \
    "$KAFKA_DIR/cluster.properties" >"$conf"
  [[ -f $data/meta.properties ]] && return 0
  tool kafka.tools.StorageTool format -t "$(<"$CLUSTER_ID_FILE")" -c "$conf" \
    >>"$CLUSTER_LOGS/format.log" 2>&1 || node_fail "$n" "formatting ${data#"$REPO"/} failed (see logs/kafka-cluster/format.log)"
}

# Launches node n unless it runs; does not wait.
launch_node() {
  local n=$1 pid
  if pid="$(node_pid "$n")"; then return 0; fi
  port_open "$(broker_port "$n")" &&
    die "port $(broker_port "$n") is taken by a process this script did not start (a cluster started from another checkout? stop it there)"
  prepare_node "$n"
  # setsid: the node outlives this script and does not get the Ctrl-C meant for `make`; it is
  # not a group leader here, so setsid execs in place and $! is java's pid.
  setsid nohup java -Xms256m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -Dkafka.logs.dir="$(node_logs "$n")" \
    -cp "$KAFKA_CP" kafka.Kafka "$(node_conf "$n")" >"$(node_logs "$n").out" 2>&1 </dev/null 9>&- &
  echo $! >"$(node_pidfile "$n")"
}

# Waits until every node in "$@" is registered and unfenced (and still alive).
wait_registered() {
  local deadline=$((SECONDS + READY_TIMEOUT)) ids n missing
  while :; do
    missing=()
    for n in "$@"; do node_pid "$n" >/dev/null || node_fail "$n" "exited during startup"; done
    ids="$(registered || true)"
    for n in "$@"; do grep -qx "$n" <<<"$ids" || missing+=("$n"); done
    ((${#missing[@]} == 0)) && return 0
    ((SECONDS < deadline)) || node_fail "${missing[0]}" "not registered after ${READY_TIMEOUT}s"
    sleep 0.5
  done
}

up() {
  kafka_fetch
  local t0=$SECONDS n
  mkdir -p "$CLUSTER_DIR" "$CLUSTER_LOGS"
  [[ -f $CLUSTER_ID_FILE ]] || tool kafka.tools.StorageTool random-uuid >"$CLUSTER_ID_FILE"
  # All at once: a node's controller waits for a quorum (2 of 3) before its broker registers.
  for n in "${NODES[@]}"; do launch_node "$n"; done
  wait_registered "${NODES[@]}"
  say "kafka-cluster: up on $(bootstrap) ($KAFKA_VERSION, $((SECONDS - t0))s)"
}

start_node() {
  valid_node "$1"
  kafka_fetch
  [[ -f $CLUSTER_ID_FILE ]] || die "the cluster was never set up; run: deploy/kafka-cluster.sh up"
  local t0=$SECONDS
  launch_node "$1"
  wait_registered "$1"
  say "kafka-cluster: node $1 up on 127.0.0.1:$(broker_port "$1") (pid $(node_pid "$1"), $((SECONDS - t0))s)"
}

kill_node() {
  valid_node "$1"
  local pid
  # A test that kills a node must know it did: a node that is not running is an error.
  pid="$(node_pid "$1")" || die "node $1 is not running (or was not started from this checkout)"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$(node_pidfile "$1")"
  say "kafka-cluster: node $1 killed (pid $pid)"
}

# SIGTERM = controlled shutdown (leaderships move first, a clean-shutdown marker spares the
# next start its log recovery); all three at once, SIGKILL for any that hangs.
down() {
  local n pid pids=()
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  ((${#pids[@]})) || { say "kafka-cluster: not running"; return 0; }
  local deadline=$((SECONDS + STOP_TIMEOUT))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      say "kafka-cluster: pid $pid did not stop within ${STOP_TIMEOUT}s; killed"
    fi
  done
  for n in "${NODES[@]}"; do rm -f "$(node_pidfile "$n")"; done
  say "kafka-cluster: stopped"
}

status() {
  local n pid up=0 ids
  ids="$(TOOL_TIMEOUT=10 registered || true)"
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then
      if grep -qx "$n" <<<"$ids"; then
        say "kafka-cluster: node $n up on 127.0.0.1:$(broker_port "$n") (pid $pid)"; up=$((up + 1))
      else
        say "kafka-cluster: node $n starting or fenced (pid $pid)"
      fi
    else
      say "kafka-cluster: node $n down"
    fi
  done
  ((up == ${#NODES[@]}))
}

# TopicCommand prints one line per partition: "Topic: t ... Partition: 0 Leader: 2 Replicas: ..."
leader() {
  local topic=${1:?topic} partition=${2:?partition} id
  id="$(tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap)" --describe \
    --topic "$topic" 2>/dev/null |
    sed -n "s/.*Partition: $partition[[:space:]]\{1,\}Leader: \([-0-9]*\).*/\1/p")"
  [[ -n $id ]] || die "no partition $partition of topic $topic on the cluster"
  echo "$id"
}

usage() {
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0" >&2
  exit 2
}

mkdir -p "$CLUSTER_DIR"
# One invocation at a time (parallel test binaries calling `up`, a test killing a node while
# another starts it): no two starts of one node, no race on pid files. Nodes get `9>&-`.
case "${1:-}" in
  up | down | start | kill | clean) exec 9>"$CLUSTER_DIR/lock"; flock 9 ;;
esac

case "${1:-}" in
  up)     up ;;
  down)   down ;;
  status) status ;;
  kill)   kill_node "${2:-}" ;;
  start)  start_node "${2:-}" ;;
  leader) leader "${2:-}" "${3:-}" ;;
  clean)
    down
    rm -rf "$CLUSTER_DIR"/node-* "$CLUSTER_ID_FILE" "$CLUSTER_LOGS"
    say "kafka-cluster: data and logs removed (jars kept)" ;;
  *) usage ;;
esac
