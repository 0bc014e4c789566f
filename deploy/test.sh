#!/usr/bin/env bash
# `make test`: every test against a real Kafka broker, a real Redis and a real SMTP server
# (Mailpit), and the web console's in a real headless Chromium (installed if missing);
# tests/tests/kafka_cluster.rs against a local 3-broker Kafka cluster, and the redis_cluster and
# fanout_cluster tests against a local 3-master Redis Cluster. Starts whichever of them is not
# running and stops, afterwards, only what it started.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

was_up="$(deploy/env.sh status || true)"
was_up+=$'\n'"$(deploy/redis-cluster.sh status || true)"
cluster_was_up="$(deploy/kafka-cluster.sh status || true)"
stop_after() {
  local rc=$?
  if [[ $was_up != *"kafka: up"* ]]; then deploy/env.sh kafka-stop || true; fi
  if [[ $was_up != *"redis: up"* ]]; then deploy/env.sh redis-stop || true; fi
  if [[ $was_up != *"mailpit: up"* ]]; then deploy/env.sh mailpit-stop || true; fi
  if [[ $was_up != *"redis-cluster: up"* ]]; then deploy/redis-cluster.sh down || true; fi
  if [[ $cluster_was_up != *" up on "* ]]; then deploy/kafka-cluster.sh down || true; fi
  exit "$rc"
}
trap stop_after EXIT

# Prometheus config, alert rules (with their unit tests) and the dashboard, checked by promtool.
deploy/check-monitoring.sh
deploy/env.sh up
deploy/redis-cluster.sh up
deploy/kafka-cluster.sh up
# The OpenAPI validator and the schema-driven fuzzer the api's tests run.
deploy/pytools.sh
# Headless Chromium and chromedriver, which the web console's tests drive.
deploy/chromium.sh
# The end-to-end tests start the binary as a separate process (to SIGKILL it), so build it first.
cargo build --workspace --bins
# Dockerfile, docker-compose.yml and Kubernetes manifests: validated by tools (no Docker engine
# here), every SLUICE__ variable through the project's own config loader.
deploy/check-deploy.sh
cargo test --workspace --no-fail-fast
