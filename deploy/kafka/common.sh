# Sourced by deploy/env.sh and deploy/kafka/tool.sh: where things live, and how the Kafka
# classpath is materialised. Expects REPO to be set to the repository root.
# shellcheck shell=bash

KAFKA_DIR="$REPO/deploy/kafka"
KAFKA_VERSION="$(tr -d '[:space:]' <"$KAFKA_DIR/VERSION")"
CACHE="$REPO/.cache"
LOGS="$REPO/logs"
KAFKA_LIBS="$CACHE/kafka/$KAFKA_VERSION/libs"
# Written last, so an interrupted mvn run is retried instead of leaving a half classpath.
KAFKA_LIBS_MARKER="$CACHE/kafka/$KAFKA_VERSION/.complete"
# shellcheck disable=SC2034 # used by the scripts that source this file
KAFKA_CP="$KAFKA_LIBS/*"

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian's policy-rc.d hook keeps package installs from starting system services (redis
# would otherwise grab 6379 with /etc/redis config, not ours). Left alone if one exists.
apt_install() {
  local hook=/usr/sbin/policy-rc.d ours=0 rc=0
  if [[ ! -e $hook ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$hook" && chmod +x "$hook" && ours=1
  fi
  mkdir -p "$LOGS"
  local log="$LOGS/apt.log"
  # Fresh machines have empty package lists; refresh only then or when an install fails.
  {
    if ! apt-cache show "$1" >/dev/null 2>&1; then apt-get update -qq || rc=$?; fi
    if ((rc == 0)); then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" || {
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
      } || rc=$?
    fi
  } >>"$log" 2>&1
  ((ours)) && rm -f "$hook"
  ((rc == 0)) || tail -n 15 "$log" >&2
  return "$rc"
}

ensure_java() {
  command -v java >/dev/null || { say "java: installing openjdk-17-jre-headless"; apt_install openjdk-17-jre-headless; }
  command -v mvn >/dev/null || { say "mvn: installing maven"; apt_install maven; }
  # Kafka 4.x brokers require Java 17+.
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ ${major%%.*} -ge 17 ]] 2>/dev/null || die "java $major found; Kafka $KAFKA_VERSION needs 17+"
}

kafka_fetch() {
  [[ -f $KAFKA_LIBS_MARKER ]] && return 0
  # tool.sh and env.sh may both get here on a fresh clone; only one of them may run mvn.
  mkdir -p "$CACHE/kafka"
  exec 8>"$CACHE/kafka/fetch.lock"
  flock 8
  [[ -f $KAFKA_LIBS_MARKER ]] && { exec 8>&-; return 0; }
  ensure_java
  say "kafka: resolving $KAFKA_VERSION jars from Maven Central into ${KAFKA_LIBS#"$REPO"/}"
  local tmp="$KAFKA_LIBS.tmp" log="$LOGS/kafka-fetch.log"
  mkdir -p "$LOGS" && rm -rf "$tmp" "$KAFKA_LIBS"
  if ! mvn -q -B -f "$KAFKA_DIR/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
       dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "mvn could not resolve Kafka $KAFKA_VERSION (full output: $log)"
  fi
  mv "$tmp" "$KAFKA_LIBS" && touch "$KAFKA_LIBS_MARKER"
  exec 8>&-
}
