#!/bin/sh
# Headless Chromium for the proxy dashboard's browser test (tests/test_proxy_ui.py).
# Idempotent: does nothing when chromium is already on PATH. Debian 12 package.
set -eu
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
command -v chromium
