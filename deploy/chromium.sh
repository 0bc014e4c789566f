#!/usr/bin/env bash
# Headless Chromium and its chromedriver, which the web console's tests drive over WebDriver
# (tests/src/browser.rs). Debian's packages (`chromium`, `chromium-driver`) are used so the
# browser and the driver always have the same version. Installs only what is missing: a machine
# that has both on PATH pays two `--version` calls; `apt-get update` runs only when the package
# lists do not know the packages yet, or an install from stale lists fails (apt_install; its
# output goes to logs/apt.log). Prints both versions.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# apt_install (policy-rc.d guard, `apt-get update` only when needed) from the env scripts.
# shellcheck source=deploy/kafka/common.sh
source "$REPO/deploy/kafka/common.sh"

fail() {
  printf 'chromium.sh: %s\n' "$*" >&2
  printf 'chromium.sh: install Debian'\''s chromium and chromium-driver packages (or any Chromium
  with the chromedriver of the same version) so that `chromium` and `chromedriver` are on PATH,
  then run deploy/chromium.sh again.\n' >&2
  exit 1
}

have_both() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }

if ! have_both; then
  command -v apt-get >/dev/null || fail "chromium or chromedriver is missing and there is no apt-get here"
  [[ $(id -u) -eq 0 ]] || fail "chromium or chromedriver is missing; installing them needs root"
  say "chromium.sh: installing chromium and chromium-driver with apt-get (log: logs/apt.log)"
  apt_install chromium chromium-driver || fail "apt-get install chromium chromium-driver failed (see above)"
  have_both || fail "installed chromium and chromium-driver, but \`chromium\` or \`chromedriver\` is not on PATH"
fi

# "Chromium 1xx.0.… built on Debian …" and "ChromeDriver 1xx.0.… (…)".
chromium --version 2>/dev/null || fail "\`chromium --version\` failed"
chromedriver --version 2>/dev/null || fail "\`chromedriver --version\` failed"
