#!/usr/bin/env bash
# apt_install.sh EXECUTABLE PACKAGE...: installs the Debian PACKAGEs unless EXECUTABLE exists.
# Exits 0 when EXECUTABLE is ready, else prints why (one line) and exits 1.
set -uo pipefail
executable="$1"; shift
name="$(basename "$executable")"
if [ -x "$executable" ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "cannot install $name: need root and apt-get (install the Debian packages $*)"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log="/tmp/steward-apt-$name.log"
if ! apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
  apt-get update -q >>"$log" 2>&1
  apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1 || {
    echo "apt-get could not install $* (log: $log)"
    exit 1
  }
fi
[ -x "$executable" ] || { echo "$* installed but $executable is missing"; exit 1; }
