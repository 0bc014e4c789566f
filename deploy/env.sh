#!/usr/bin/env bash
# Local environment for sluice, all on loopback and with no Docker engine: a real single-node
# KRaft Kafka broker (jars from Maven Central), a real Redis, Mailpit (an SMTP server that keeps
# what it receives, with a web UI to read it in; built from the Go module proxy, its UI with npm)
# and s3s-fs (an S3-compatible object store on the file system, built from crates.io).
#
#   deploy/env.sh up | down | status | clean | fetch
#     (up and fetch: kafka, redis, mailpit; s3 only by s3-start, for trying S3 storage by hand:
#      the default store is a directory and the tests serve s3s-fs in their own process, so no
#      fresh machine pays its ~5 minute build. down, status, clean: all four)
#   deploy/env.sh kafka-start | kafka-stop | redis-start | redis-stop
#   deploy/env.sh mailpit-start | mailpit-stop | s3-start | s3-stop
#
#   kafka    127.0.0.1:9092                  redis  127.0.0.1:6379
#   mailpit  SMTP 127.0.0.1:1025, any or no AUTH; web UI http://127.0.0.1:8025/,
#            API http://127.0.0.1:8025/api/v1/ (chaos on)
#   s3       http://127.0.0.1:9000, path-style; access key sluice, secret sluice-dev-secret,
#            region us-east-1; bucket sluice
#
# Everything it writes stays inside the repo, .cache/ (jars, binaries, Go and npm caches, data,
# pids) and logs/, but for cargo's own registry cache (~/.cargo) and the build dir s3s-fs
# compiles in (under /tmp, removed once installed). Data survives stop/start and down/up; only
# `clean` deletes it.
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

MAILPIT_VERSION=v1.33.1
MAILPIT_RAPIDOC=9.3.8 # its API docs page; see mailpit_install
MAILPIT_HOST=127.0.0.1 MAILPIT_SMTP_PORT=1025 MAILPIT_HTTP_PORT=8025
MAILPIT_BIN="$CACHE/bin/mailpit"
MAILPIT_STAMP="$MAILPIT_BIN.version" # "$MAILPIT_VERSION+ui" once built with its web UI
MAILPIT_DIR="$CACHE/mailpit"
MAILPIT_PIDFILE="$CACHE/mailpit.pid"
GO_HOME="$CACHE/go" # GOPATH, module cache and build cache of the mailpit build
S3S_VERSION=0.14.1  # newest s3s-fs whose rust-version (1.92) this toolchain meets; 0.15+ need 1.96
S3_HOST=127.0.0.1 S3_PORT=9000 S3_REGION=us-east-1 S3_BUCKET=sluice
S3_ACCESS_KEY=sluice S3_SECRET_KEY=sluice-dev-secret
S3S_ROOT="$CACHE/s3s-fs"
S3S_BIN="$S3S_ROOT/bin/s3s-fs"
S3_DATA="$CACHE/s3-data"
S3_PIDFILE="$CACHE/s3.pid"
AUX_READY_TIMEOUT=20 AUX_STOP_TIMEOUT=10

# Plain TCP probes via bash, so status checks cost no JVM start and need no redis-cli.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
redis_loading() {
  timeout 1 bash -c "exec 3<>/dev/tcp/$REDIS_HOST/$REDIS_PORT && printf 'PING\r\n' >&3 &&
    IFS= read -r reply <&3 && [[ \$reply == -LOADING* ]]" 2>/dev/null
}
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
  # A big append-only file takes a while to load (Redis answers -LOADING meanwhile): that is
  # progress, so it gets longer than a Redis that does not answer at all.
  local deadline=$((SECONDS + 10)) loading_deadline=$((SECONDS + 180))
  until redis_ping; do
    if redis_loading && ((SECONDS < loading_deadline)); then sleep 0.5; continue; fi
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

# --- Mailpit and s3s-fs: single Go / Rust binaries, started straight from .cache/ -------------

# Whether PID is (still) a process started from BIN: the cmdline names it, which also rules out
# a reused pid and a zombie (whose cmdline is empty).
runs_bin() {
  local cmd
  cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true)"
  [[ $cmd == "$2 "* ]]
}

# The pid of the server this repo started from BIN: the pid file if it still names that binary,
# else any process running it (the binaries live in this repo's .cache/, so it is ours).
bin_pid() {
  local pidfile=$1 bin=$2 pid p
  if [[ -f $pidfile ]]; then
    pid="$(<"$pidfile")"
    [[ $pid =~ ^[0-9]+$ ]] && runs_bin "$pid" "$bin" && { echo "$pid"; return 0; }
  fi
  for p in /proc/[0-9]*; do
    runs_bin "${p#/proc/}" "$bin" && { echo "${p#/proc/}"; return 0; }
  done
  return 1
}

# stop_bin NAME PIDFILE BIN HOST PORT: SIGTERM (both servers exit cleanly on it), SIGKILL if hung.
stop_bin() {
  local name=$1 pidfile=$2 bin=$3 host=$4 port=$5 pid
  if ! pid="$(bin_pid "$pidfile" "$bin")"; then
    rm -f "$pidfile"
    if port_open "$host" "$port"; then
      say "$name: $host:$port is served by a process this script did not start; leaving it"
    else
      say "$name: not running"
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + AUX_STOP_TIMEOUT))
  while runs_bin "$pid" "$bin" && ((SECONDS < deadline)); do sleep 0.1; done
  if runs_bin "$pid" "$bin"; then
    kill -KILL "$pid" 2>/dev/null || true
    say "$name: did not stop within ${AUX_STOP_TIMEOUT}s; killed pid $pid"
  else
    say "$name: stopped"
  fi
  rm -f "$pidfile"
}

# aux_fail NAME LOG FROM WHY [PID]: what this start wrote to the log (from byte FROM on) says
# why the server did not come up. One that started but never got ready is killed, so it does not
# hold the port while status says down (PID is this script's own child: no reused pid).
aux_fail() {
  if [[ -n ${5:-} ]]; then kill -KILL "$5" 2>/dev/null || true; fi
  {
    say "$1: $4"
    tail -c "+$3" "$2" 2>/dev/null | tail -n 15
    say "$1: full log in ${2#"$REPO"/}"
  } >&2 || true
  exit 1
}

# Where this start's lines begin in an appended log.
log_end() { echo $(($(stat -c %s "$1" 2>/dev/null || echo 0) + 1)); }

ensure_curl() {
  command -v curl >/dev/null && return 0
  say "curl: installing (apt)"
  apt_install curl || die "could not install curl"
}

# The readiness probes of both servers use curl; without it, status can only look at the ports.
have_curl() { command -v curl >/dev/null; }

# A real SMTP greeting, not just an open port (bash's /dev/tcp again: no client needed).
smtp_banner() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$MAILPIT_HOST/$MAILPIT_SMTP_PORT && IFS= read -r line <&3 &&
    printf 'QUIT\r\n' >&3 && [[ \$line == 220* ]]" 2>/dev/null
}

# /readyz answers 200 once the database is open and both listeners are up.
mailpit_ready() {
  curl -fsS -m 2 -o /dev/null "http://$MAILPIT_HOST:$MAILPIT_HTTP_PORT/readyz" 2>/dev/null && smtp_banner
}

# The module zip has the UI's sources (server/ui-src) but not the bundle the binary embeds
# (server/ui/dist, made by `npm run build`), and a binary built from a directory records
# "(devel)" rather than the module version. So the stamp, written only after a build with the UI
# succeeded, is what says which build this is; a binary without it (e.g. an older UI-less
# `go install`) is rebuilt.
mailpit_installed() {
  [[ -x $MAILPIT_BIN && -f $MAILPIT_STAMP && "$(<"$MAILPIT_STAMP")" == "$MAILPIT_VERSION+ui" ]]
}

# mailpit_build_fail LOG SRC STEP: the log's tail says why; the build copy is kept to look at.
mailpit_build_fail() {
  local kept=""
  [[ -d $2 ]] && kept="; build dir ${2#"$REPO"/} kept"
  tail -n 20 "$1" >&2
  die "mailpit: $3 failed (full output: ${1#"$REPO"/}$kept)"
}

# Much like upstream's Dockerfile: the UI bundle by `npm run build` (= its `npm run package`), then
# a static go build with the version set. Not done: its go-licenses step (the binary says the
# third-party license list is not included). The build copy is removed once installed, kept when
# a step fails.
mailpit_install() {
  mailpit_installed && return 0
  command -v go >/dev/null || die "mailpit: go is needed to build github.com/axllent/mailpit@$MAILPIT_VERSION"
  { command -v npm && command -v node; } >/dev/null || die "mailpit: node and npm are needed to build Mailpit's web UI"
  # Some of the UI build's tools in its lockfile (sass, chokidar, unplugin) want node >= 20.19.
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a == 20 && b >= 19) ? 0 : 1)' ||
    die "mailpit: node $(node --version) found; building Mailpit's web UI needs 20.19+"
  say "mailpit: building github.com/axllent/mailpit@$MAILPIT_VERSION with its web UI into ${MAILPIT_BIN#"$REPO"/} (once; a few minutes)"
  mkdir -p "$LOGS" "${MAILPIT_BIN%/*}" "$GO_HOME"
  local log="$LOGS/mailpit-install.log" t0=$SECONDS mod_dir
  local src="$CACHE/mailpit-src" tmp_bin="$MAILPIT_BIN.tmp"
  rm -f "$MAILPIT_STAMP"
  : >"$log"
  # Caches under .cache/go so a rebuild is cached and needs no ~/go; -modcacherw so `rm -rf
  # .cache` works without root; GOTOOLCHAIN=local: a too-old go fails clearly, fetches nothing.
  # CGO off as upstream builds it (its SQLite is pure Go).
  local go_env=(GOPATH="$GO_HOME" GOMODCACHE="$GO_HOME/mod" GOCACHE="$GO_HOME/build"
    GOTOOLCHAIN=local GOFLAGS="-modcacherw ${GOFLAGS:-}" CGO_ENABLED=0)
  # npm's cache under .cache/npm too; no browser downloads (should Playwright, only for upstream's
  # e2e tests, ever come along), no update notices.
  local npm_env=(npm_config_cache="$CACHE/npm" npm_config_update_notifier=false
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1)

  say "== go mod download github.com/axllent/mailpit@$MAILPIT_VERSION" >>"$log"
  local json
  json="$(env "${go_env[@]}" go mod download -json "github.com/axllent/mailpit@$MAILPIT_VERSION" 2>>"$log")" || true
  printf '%s\n' "$json" >>"$log"
  mod_dir="$(sed -n 's/^\t"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")"
  [[ -n $mod_dir && -f $mod_dir/package-lock.json ]] || mailpit_build_fail "$log" "$src" "go mod download"
  # The module cache is read-only and must stay pristine: build in a writable copy.
  rm -rf "$src"
  { cp -R "$mod_dir" "$src" && chmod -R u+w "$src"; } || mailpit_build_fail "$log" "$src" "copying the module source"

  # Only what `npm run build` needs, at the versions upstream's package-lock.json pins (npm
  # install keeps those): the UI's dependencies and the four build tools. Not its linters, test
  # runners and browsers (eslint, playwright, jsdom, ...), and not the build tools' optional peers
  # (sass-embedded: the pinned version is not on the registry; esbuild-sass-plugin uses sass).
  # No install scripts either: none is needed (esbuild runs from its platform package).
  say "== npm install (UI build dependencies)" >>"$log"
  (cd "$src" && node -e '
    const fs = require("fs"), p = JSON.parse(fs.readFileSync("package.json", "utf8"));
    const tools = ["esbuild", "esbuild-plugin-vue-next", "esbuild-sass-plugin", "@vue/compiler-sfc"];
    for (const t of tools) if (!p.devDependencies[t]) throw new Error("no devDependency " + t);
    p.devDependencies = Object.fromEntries(tools.map((t) => [t, p.devDependencies[t]]));
    delete p.dependencies.rapidoc;
    fs.writeFileSync("package.json", JSON.stringify(p, null, 2) + "\n");' &&
    env "${npm_env[@]}" npm install --no-audit --no-fund --prefer-offline --legacy-peer-deps \
      --ignore-scripts) >>"$log" 2>&1 || mailpit_build_fail "$log" "$src" "npm install (web UI dependencies)"
  # rapidoc renders the API docs page (/api/v1/, the docs.js bundle). No 12.x, which upstream
  # pins, is on the registry; MAILPIT_RAPIDOC is the newest that is. Only its package is unpacked:
  # its main is a self-contained bundle, and the ~100 packages it depends on (tree-sitter among
  # them) only go into building that.
  say "== npm pack rapidoc@$MAILPIT_RAPIDOC" >>"$log"
  (cd "$src" && tgz="$(env "${npm_env[@]}" npm pack --silent --prefer-offline "rapidoc@$MAILPIT_RAPIDOC")" &&
    mkdir -p node_modules/rapidoc && tar -xzf "$tgz" -C node_modules/rapidoc --strip-components=1 &&
    [[ -s node_modules/rapidoc/dist/rapidoc-min.js ]]) >>"$log" 2>&1 ||
    mailpit_build_fail "$log" "$src" "npm pack rapidoc@$MAILPIT_RAPIDOC (API docs page)"
  say "== npm run build" >>"$log"
  (cd "$src" && env "${npm_env[@]}" npm run build) >>"$log" 2>&1 || mailpit_build_fail "$log" "$src" "npm run build (web UI)"
  [[ -s $src/server/ui/dist/app.js && -s $src/server/ui/dist/app.css && -s $src/server/ui/dist/docs.js ]] ||
    mailpit_build_fail "$log" "$src" "npm run build (no app.js, app.css or docs.js in server/ui/dist)"

  say "== go build" >>"$log"
  rm -f "$tmp_bin"
  (cd "$src" && env "${go_env[@]}" go build -o "$tmp_bin" \
      -ldflags "-s -w -X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" .) >>"$log" 2>&1 ||
    mailpit_build_fail "$log" "$src" "go build"
  # Renamed into place: a running mailpit keeps its (old) file, and no half-written binary is
  # ever at MAILPIT_BIN. The stamp comes last, so an interrupted install is redone.
  mv -f "$tmp_bin" "$MAILPIT_BIN" || mailpit_build_fail "$log" "$src" "installing the binary"
  rm -rf "$src"
  printf '%s\n' "$MAILPIT_VERSION+ui" >"$MAILPIT_STAMP"
  mailpit_installed || die "mailpit: install did not leave ${MAILPIT_BIN#"$REPO"/} and its stamp"
  say "mailpit: built in $((SECONDS - t0))s"
}

mailpit_start() {
  ensure_curl
  if mailpit_ready; then
    say "mailpit: already up on $MAILPIT_HOST:$MAILPIT_SMTP_PORT (http $MAILPIT_HTTP_PORT)"; return 0
  fi
  mailpit_install
  mkdir -p "$MAILPIT_DIR" "$LOGS"
  local log="$LOGS/mailpit.log" from
  from="$(log_end "$log")"
  # A database file rather than Mailpit's default throwaway one in /tmp: messages survive a
  # restart like everything else here, and a start is ~0.1s either way. Any AUTH (or none) is
  # accepted, over plain SMTP too; no reverse DNS (no DNS here); no GitHub version checks. Chaos
  # is enabled but idle (0%) until a test sets it via PUT /api/v1/chaos.
  setsid nohup "$MAILPIT_BIN" --database "$MAILPIT_DIR/mailpit.db" \
    --listen "$MAILPIT_HOST:$MAILPIT_HTTP_PORT" --smtp "$MAILPIT_HOST:$MAILPIT_SMTP_PORT" \
    --smtp-auth-accept-any --smtp-auth-allow-insecure --smtp-disable-rdns \
    --disable-version-check --enable-chaos >>"$log" 2>&1 </dev/null 9>&- &
  echo $! >"$MAILPIT_PIDFILE"
  local pid=$! deadline=$((SECONDS + AUX_READY_TIMEOUT))
  until mailpit_ready; do
    kill -0 "$pid" 2>/dev/null || aux_fail mailpit "$log" "$from" "exited during startup"
    ((SECONDS < deadline)) || aux_fail mailpit "$log" "$from" "not ready after ${AUX_READY_TIMEOUT}s" "$pid"
    sleep 0.1
  done
  say "mailpit: started, SMTP $MAILPIT_HOST:$MAILPIT_SMTP_PORT, http://$MAILPIT_HOST:$MAILPIT_HTTP_PORT ($MAILPIT_VERSION, pid $pid)"
}

mailpit_stop() { stop_bin mailpit "$MAILPIT_PIDFILE" "$MAILPIT_BIN" "$MAILPIT_HOST" "$MAILPIT_HTTP_PORT"; }

# SigV4-signed requests with the dev credentials, path-style (s3s-fs is started without --domain).
# curl 7.x does not send x-amz-content-sha256, which S3 (and s3s) require; curl signs it with
# the rest when it is given.
s3_curl() {
  curl -sS -m 5 --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
s3_code() { s3_curl -o /dev/null -w '%{http_code}' "$@" 2>/dev/null; }

# A signed ListBuckets: proves an S3 server is up and takes our credentials.
s3_ready() {
  local body
  body="$(s3_curl -f "http://$S3_HOST:$S3_PORT/" 2>/dev/null)" && [[ $body == *"<ListAllMyBucketsResult"* ]]
}

# Created through the API (not mkdir), so this holds for any S3 server.
s3_bucket() {
  local code
  code="$(s3_code -I "http://$S3_HOST:$S3_PORT/$S3_BUCKET")"
  [[ $code == 200 ]] && return 0
  [[ $code == 404 ]] && code="$(s3_code -X PUT "http://$S3_HOST:$S3_PORT/$S3_BUCKET")"
  [[ $code == 200 ]] || { say "s3: bucket $S3_BUCKET: HTTP $code" >&2; return 1; }
}

s3_installed() {
  [[ -x $S3S_BIN && "$("$S3S_BIN" --version 2>/dev/null)" == "s3s-fs $S3S_VERSION" ]]
}

s3_install() {
  s3_installed && return 0
  command -v cargo >/dev/null || die "s3: cargo is needed to build s3s-fs $S3S_VERSION"
  say "s3: building s3s-fs $S3S_VERSION from crates.io into ${S3S_ROOT#"$REPO"/} (once; a few minutes)"
  mkdir -p "$LOGS"
  local log="$LOGS/s3s-fs-install.log" t0=$SECONDS target="${TMPDIR:-/tmp}/sluice-s3s-fs-target"
  # Run from / so neither the repo's cargo config nor its target/ is involved; --force because a
  # half-finished earlier install may be recorded in .crates.toml.
  if ! (cd / && CARGO_TARGET_DIR="$target" cargo install s3s-fs --version "$S3S_VERSION" --locked \
          --features binary --root "$S3S_ROOT" --force) >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "s3: cargo install s3s-fs failed (full output: ${log#"$REPO"/}; build dir $target kept)"
  fi
  rm -rf "$target"
  s3_installed || die "s3: installed s3s-fs does not report $S3S_VERSION"
  say "s3: built in $((SECONDS - t0))s"
}

s3_start() {
  ensure_curl
  if s3_ready; then s3_bucket; say "s3: already up on http://$S3_HOST:$S3_PORT"; return 0; fi
  s3_install
  mkdir -p "$S3_DATA" "$LOGS"
  local log="$LOGS/s3.log" from
  from="$(log_end "$log")"
  # Buckets are directories of S3_DATA, objects files; writes go to a temp file and are renamed
  # into place, so SIGTERM (which s3s-fs does not catch) loses nothing that was acknowledged.
  # Its log is one multi-line record per event; S3S_LOG=debug (a RUST_LOG filter) shows requests.
  RUST_LOG="${S3S_LOG:-info}" setsid nohup "$S3S_BIN" --host "$S3_HOST" --port "$S3_PORT" \
    --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$S3_DATA" \
    >>"$log" 2>&1 </dev/null 9>&- &
  echo $! >"$S3_PIDFILE"
  local pid=$! deadline=$((SECONDS + AUX_READY_TIMEOUT))
  until s3_ready; do
    kill -0 "$pid" 2>/dev/null || aux_fail s3 "$log" "$from" "exited during startup"
    ((SECONDS < deadline)) || aux_fail s3 "$log" "$from" "not ready after ${AUX_READY_TIMEOUT}s" "$pid"
    sleep 0.1
  done
  s3_bucket || aux_fail s3 "$log" "$from" "could not create bucket $S3_BUCKET" "$pid"
  say "s3: started on http://$S3_HOST:$S3_PORT, bucket $S3_BUCKET (s3s-fs $S3S_VERSION, pid $pid)"
}

s3_stop() { stop_bin s3 "$S3_PIDFILE" "$S3S_BIN" "$S3_HOST" "$S3_PORT"; }

aux_status() {
  local pid up
  if have_curl; then mailpit_ready && up=1 || up=0
  else port_open "$MAILPIT_HOST" "$MAILPIT_SMTP_PORT" && up=1 || up=0; fi
  if ((up)); then
    pid="$(bin_pid "$MAILPIT_PIDFILE" "$MAILPIT_BIN" || echo "not ours")"
    say "mailpit: up, SMTP $MAILPIT_HOST:$MAILPIT_SMTP_PORT, http://$MAILPIT_HOST:$MAILPIT_HTTP_PORT ($MAILPIT_VERSION, pid $pid)"
  else
    say "mailpit: down"
  fi
  if have_curl; then s3_ready && up=1 || up=0
  else port_open "$S3_HOST" "$S3_PORT" && up=1 || up=0; fi
  if ((up)); then
    pid="$(bin_pid "$S3_PIDFILE" "$S3S_BIN" || echo "not ours")"
    say "s3: up on http://$S3_HOST:$S3_PORT (s3s-fs $S3S_VERSION, pid $pid)"
  else
    say "s3: down"
  fi
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
  aux_status
}

usage() {
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' "$0" >&2
  exit 2
}

# Serialise concurrent invocations (parallel test binaries calling `up`, a test stopping the
# broker while another starts it) so they never race on the pid file or start two brokers.
# Long-lived children get `9>&-` so they do not hold this lock after we exit.
mkdir -p "$CACHE"
exec 9>"$CACHE/env.lock"
flock 9

case "${1:-}" in
  up)
    ensure_redis; ensure_kcat; kafka_fetch; mailpit_install
    redis_start; kafka_start; mailpit_start ;;
  down)          kafka_stop; redis_stop; mailpit_stop; s3_stop ;;
  kafka-start)   kafka_start ;;
  kafka-stop)    kafka_stop ;;
  redis-start)   redis_start ;;
  redis-stop)    redis_stop ;;
  mailpit-start) mailpit_start ;;
  mailpit-stop)  mailpit_stop ;;
  s3-start)      s3_start ;;
  s3-stop)       s3_stop ;;
  status)        status ;;
  fetch)         kafka_fetch; mailpit_install ;;
  clean)
    kafka_stop; redis_stop; mailpit_stop; s3_stop
    rm -rf "$KAFKA_DATA" "$KAFKA_CONF" "$REDIS_DIR" "$MAILPIT_DIR" "$S3_DATA" "$LOGS"
    say "clean: removed broker, redis, mailpit and s3 data and logs (jars and binaries kept)" ;;
  *) usage ;;
esac
