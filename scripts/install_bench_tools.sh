#!/usr/bin/env bash
# Installs what bench/search_load.py drives the server with: wrk (Debian package). Without it
# the benchmark falls back to its Python load generator. Exits 0 when wrk is ready.
exec bash "$(dirname "$0")/apt_install.sh" /usr/bin/wrk wrk
