#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium (Playwright drives the system browser;
# no browser download). Exits 0 when /usr/bin/chromium is ready, else prints why and exits 1.
exec bash "$(dirname "$0")/apt_install.sh" /usr/bin/chromium chromium chromium-driver
