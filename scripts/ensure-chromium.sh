#!/usr/bin/env bash
# Makes a Chromium browser available for the web UI's browser tests (tests/web, Playwright).
# Playwright's own browser download cannot work offline: the tests drive Debian's chromium.
set -euo pipefail
CHROMIUM=${CAPMON_CHROMIUM:-/usr/bin/chromium}
if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "Chromium is missing ($CHROMIUM) and this user cannot install it." >&2
    echo "Install: apt-get install chromium (or set CAPMON_CHROMIUM to a Chromium binary)," >&2
    echo "or skip the browser tests with CAPMON_TEST_SKIP_BROWSER=1." >&2
    exit 1
fi
echo "Installing Chromium from Debian packages..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
