#!/usr/bin/env bash
# Headless Chromium and its chromedriver, which the web console's tests drive over WebDriver
# (tests/src/browser.rs). Debian's packages (`chromium`, `chromium-driver`) are used so the
# browser and the driver always have the same version. Installs only what is missing: a machine
# that has both on PATH pays two `--version` calls; `apt-get update` runs only when the package
# lists do not know the packages yet (or the first install attempt fails on stale lists).
set -euo pipefail

PACKAGES=(chromium chromium-driver)

have_both() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }

fail() {
  echo "chromium.sh: $*" >&2
  echo "chromium.sh: install them by hand (Debian/Ubuntu: apt-get install chromium chromium-driver)," >&2
  echo "  so that \`chromium\` and \`chromedriver\` are on PATH, then run deploy/chromium.sh again." >&2
  exit 1
}

if ! have_both; then
  command -v apt-get >/dev/null || fail "chromium or chromedriver is missing and there is no apt-get here"
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || fail "chromium or chromedriver is missing; installing needs root (or sudo)"
    SUDO=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0)
  echo "chromium.sh: installing ${PACKAGES[*]} with apt-get"
  # A fresh machine (or container) often has no package lists at all: update first then.
  if ! apt-cache show "${PACKAGES[@]}" >/dev/null 2>&1; then
    "${APT[@]}" update || fail "apt-get update failed"
  fi
  if ! "${APT[@]}" install --no-install-recommends "${PACKAGES[@]}"; then
    # Lists that are present but stale name package versions the mirror no longer has.
    "${APT[@]}" update || fail "apt-get update failed"
    "${APT[@]}" install --no-install-recommends "${PACKAGES[@]}" || fail "apt-get install ${PACKAGES[*]} failed"
  fi
  have_both || fail "installed ${PACKAGES[*]}, but chromium or chromedriver is still not on PATH"
fi

# Both print one line, e.g. "Chromium 1xx.0.… built on Debian …" and "ChromeDriver 1xx.0.… (…)".
chromium --version 2>/dev/null || fail "\`chromium --version\` failed"
chromedriver --version 2>/dev/null || fail "\`chromedriver --version\` failed"
