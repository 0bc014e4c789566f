#!/usr/bin/env bash
# Validates the monitoring config: Prometheus config and alert rules (promtool), the alert unit
# tests (promtool test rules), and the Grafana provisioning and dashboards (JSON, and every
# PromQL expression against deploy/prometheus/metrics-contract.txt).
# Installs promtool from Debian's `prometheus` package when it is missing (CI machines are fresh)
# without letting the package start a Prometheus server. Exits non-zero on the first failure.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PROM=deploy/prometheus
GRAFANA=deploy/grafana

step() { printf '\n== %s\n' "$*"; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

install_promtool() {
  command -v apt-get >/dev/null || {
    echo "promtool is missing and apt-get is not available: install Prometheus' promtool" >&2
    exit 1
  }
  echo "promtool not found: installing Debian's prometheus package"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package's maintainer scripts from starting a Prometheus server (port 9090) on
  # machines without systemd: deny service starts for the length of the install.
  local policy=/usr/sbin/policy-rc.d added_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    added_policy=1
    trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # `apt-get update` only when the package lists do not know the package (fresh machine).
  if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    as_root apt-get update -qq
  fi
  if ! as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
    # stale lists (a mirror moved on): refresh once and retry
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  if [[ -n $added_policy ]]; then
    as_root rm -f "$policy"
    trap - EXIT
  fi
  command -v promtool >/dev/null || { echo "promtool still missing after install" >&2; exit 1; }
}

command -v promtool >/dev/null || install_promtool
promtool --version 2>&1 | head -1

step "promtool check config $PROM/prometheus.yml"
promtool check config "$PROM/prometheus.yml"

step "promtool check rules $PROM/alerts.yml"
promtool check rules "$PROM/alerts.yml"

step "promtool test rules $PROM/alerts_test.yml"
promtool test rules "$PROM/alerts_test.yml"

step "Grafana dashboards: JSON syntax"
shopt -s nullglob
dashboards=("$GRAFANA"/dashboards/*.json)
if [[ ${#dashboards[@]} -eq 0 ]]; then
  echo "no dashboards in $GRAFANA/dashboards" >&2
  exit 1
fi
for f in "${dashboards[@]}"; do
  python3 -m json.tool "$f" >/dev/null
  echo "  $f: valid JSON"
done

step "dashboards, alerts and alert tests against $PROM/metrics-contract.txt"
python3 "$PROM/check_contract.py" "$REPO"

echo
echo "monitoring config: all checks passed"
