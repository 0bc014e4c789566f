#!/usr/bin/env bash
# Python tools the tests drive from outside, pinned, in .cache/pytools (a virtualenv made once):
# openapi-spec-validator checks /openapi.json, schemathesis fuzzes the running api against it;
# stripe and standardwebhooks are the senders' own libraries, signing the incoming-webhook tests'
# and benchmark's requests; confluent-kafka produces bench-follows' follow import.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.cache/pytools"
PINS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0 stripe==16.1.0 standardwebhooks==1.3.0
  confluent-kafka==2.16.1)
STAMP="$VENV/.installed-$(printf '%s ' "${PINS[@]}" | sha256sum | cut -c1-12)"

[[ -f $STAMP ]] && exit 0
echo "pytools: installing ${PINS[*]} into .cache/pytools"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
touch "$STAMP"
