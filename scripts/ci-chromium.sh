#!/usr/bin/env bash
# Installs (when missing) Debian's chromium and its driver for the console's browser test
# (tests/test_console_browser.py). Debian, as root; safe to run again; prints nothing on stdout.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
echo "ci-chromium: installing chromium and chromium-driver with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o Acquire::Retries=3 update -qq >&2
apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends chromium chromium-driver >&2
