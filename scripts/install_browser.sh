#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium (Playwright drives the system browser;
# no browser download). Exits 0 when /usr/bin/chromium is ready, else prints why and exits 1.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "cannot install Chromium: need root and apt-get (install the Debian packages chromium and chromium-driver)"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends chromium chromium-driver >/tmp/steward-apt.log 2>&1; then
  apt-get update -q >>/tmp/steward-apt.log 2>&1
  apt-get install -y -q --no-install-recommends chromium chromium-driver >>/tmp/steward-apt.log 2>&1 || {
    echo "apt-get could not install chromium (log: /tmp/steward-apt.log)"
    exit 1
  }
fi
[ -x /usr/bin/chromium ] || { echo "chromium installed but /usr/bin/chromium is missing"; exit 1; }
