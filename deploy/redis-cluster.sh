#!/usr/bin/env bash
# A real 3-master Redis Cluster on loopback, from the same Debian `redis-server` as deploy/env.sh,
# for the tests that run sluice on a cluster (`redis.url = "redis+cluster://…"`).
#
#   deploy/redis-cluster.sh up | down | status | clean
#
#   masters  127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7003 (cluster bus on 17001–17003),
#            no replicas; sluice's URL: redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
#
# `up` starts whichever node is not running, forms the cluster the first time (`redis-cli
# --cluster create`, the 16 384 slots split in three) and waits until every node reports
# cluster_state:ok; with the cluster up and ok it does nothing. Data (append-only files and each
# node's nodes.conf) lives in .cache/redis-cluster/<port>/ and survives down/up; logs go to
# logs/redis-cluster-<port>.log. `down` stops these three servers only; `clean` also deletes
# their data (the next `up` forms a new cluster).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/deploy/kafka/common.sh"

HOST=127.0.0.1
PORTS=(7001 7002 7003)
DATA="$CACHE/redis-cluster"
START_TIMEOUT=10 OK_TIMEOUT=30 STOP_TIMEOUT=10

cli() { timeout 2 redis-cli -h "$HOST" -p "$1" "${@:2}" 2>/dev/null; }
node_up() { [[ $(cli "$1" ping) == PONG ]]; }
# A field of CLUSTER INFO (e.g. cluster_state), without its trailing CR.
info_field() { cli "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"; }
all_ok() {
  local port
  for port in "${PORTS[@]}"; do [[ $(info_field "$port" cluster_state) == ok ]] || return 1; done
}
seeds() { local IFS=,; echo "${PORTS[*]/#/$HOST:}"; }

start_node() {
  local port=$1 dir="$DATA/$1"
  node_up "$port" && return 0
  mkdir -p "$dir" "$LOGS"
  # Append-only like the single Redis of env.sh; nodes.conf keeps the node's id and slots, so a
  # restarted node rejoins its cluster.
  redis-server --daemonize yes --bind "$HOST" --port "$port" --dir "$dir" \
    --pidfile "$dir/redis.pid" --logfile "$LOGS/redis-cluster-$port.log" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --save '' --appendonly yes --appendfsync everysec
  local deadline=$((SECONDS + START_TIMEOUT))
  until node_up "$port"; do
    ((SECONDS < deadline)) || { tail -n 20 "$LOGS/redis-cluster-$port.log" >&2; die "redis-cluster: node $port did not answer PING"; }
    sleep 0.1
  done
}

up() {
  command -v redis-server >/dev/null || { say "redis: installing redis-server (apt)"; apt_install redis-server; }
  if all_ok; then say "redis-cluster: already up on $(seeds)"; return 0; fi
  local port
  for port in "${PORTS[@]}"; do start_node "$port"; done
  # Formed once: a node that knows no other node and serves no slot is fresh. Nodes that restart
  # from their nodes.conf find each other by themselves.
  local fresh=0
  for port in "${PORTS[@]}"; do
    if [[ $(info_field "$port" cluster_known_nodes) == 1 && $(info_field "$port" cluster_slots_assigned) == 0 ]]; then
      fresh=$((fresh + 1))
    fi
  done
  if ((fresh == ${#PORTS[@]})); then
    local nodes=("${PORTS[@]/#/$HOST:}")
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
      >>"$LOGS/redis-cluster-create.log" 2>&1 \
      || { tail -n 20 "$LOGS/redis-cluster-create.log" >&2; die "redis-cluster: redis-cli --cluster create failed"; }
  elif ((fresh > 0)); then
    die "redis-cluster: $fresh node(s) lost their cluster configuration; run '$0 clean' then '$0 up'"
  fi
  local deadline=$((SECONDS + OK_TIMEOUT))
  until all_ok; do
    if ((SECONDS >= deadline)); then
      for port in "${PORTS[@]}"; do say "  $port: cluster_state:$(info_field "$port" cluster_state)" >&2; done
      die "redis-cluster: not cluster_state:ok after ${OK_TIMEOUT}s (logs: logs/redis-cluster-*.log)"
    fi
    sleep 0.2
  done
  say "redis-cluster: started on $(seeds)"
}

down() {
  local port
  for port in "${PORTS[@]}"; do
    node_up "$port" || { rm -f "$DATA/$port/redis.pid"; continue; }
    # SHUTDOWN fsyncs the append-only file first.
    cli "$port" shutdown >/dev/null || true
    if node_up "$port" && [[ -f $DATA/$port/redis.pid ]]; then kill -TERM "$(<"$DATA/$port/redis.pid")" 2>/dev/null || true; fi
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while node_up "$port"; do
      ((SECONDS < deadline)) || die "redis-cluster: node $port still answering"
      sleep 0.1
    done
    rm -f "$DATA/$port/redis.pid"
  done
  say "redis-cluster: stopped"
}

status() {
  local port up=0
  for port in "${PORTS[@]}"; do node_up "$port" && up=$((up + 1)); done
  if ((up == 0)); then say "redis-cluster: down"
  elif all_ok; then say "redis-cluster: up on $(seeds) (cluster_state:ok)"
  else say "redis-cluster: degraded ($up of ${#PORTS[@]} nodes answer, cluster_state not ok everywhere)"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  clean) down; rm -rf "$DATA" && say "redis-cluster: data removed" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
