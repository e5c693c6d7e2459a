#!/usr/bin/env bash
# make run: migrate, load the demo organization and data (load_demo: skipped once done), serve on
# 127.0.0.1:8000 with a Celery worker (and beat), print the demo logins; Ctrl-C stops both cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DEBUG="${DEBUG:-1}"
export SECRET_KEY="${SECRET_KEY:-dev-only-$(hostname)-not-for-production}"
export HF_HUB_OFFLINE=1
# Plain HTTP on this machine: the production HTTPS defaults (secure cookies, redirect to HTTPS,
# HSTS) are off, even with DEBUG=0.
export SECURE_SSL_REDIRECT="${SECURE_SSL_REDIRECT:-0}" SECURE_COOKIES="${SECURE_COOKIES:-0}"
export SECURE_HSTS_SECONDS="${SECURE_HSTS_SECONDS:-0}"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"

echo "==> Migrating the database"
$BIN/python manage.py migrate --noinput -v0
echo "==> Loading the demo organization"
$BIN/python manage.py seed_demo --quiet-logins --i-know-this-is-a-demo
# The demo data, approved, trained and served (skipped when already done; DEMO_DATA=PATH loads a
# real set, see docs/demo-data.md). A failure is reported but the product still starts, so the
# failed run's page and log can be looked at.
echo "==> Loading the demo data${DEMO_DATA:+ from $DEMO_DATA} (the first time takes a few minutes)"
if ! $BIN/python manage.py load_demo ${DEMO_DATA:+--data "$DEMO_DATA"}; then
  echo "WARNING: load_demo failed (see above): Steward starts without the demo index." >&2
  echo "         Fix the cause and run make run again; what was done is kept." >&2
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "==> Stopping web server and worker"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # The worker finishes its current job first (warm shutdown); after 60 s it is killed: a
  # pipeline run it held is marked "worker lost" by the sweep and can be retried.
  for _ in $(seq 1 60); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "    still running after 60 s: killing $pid"
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  wait 2>/dev/null || true
  echo "==> Stopped"
}
trap stop INT TERM EXIT

mkdir -p var/log
$BIN/celery -A config worker -B -Q default,clean,train,index --concurrency 2 \
  --schedule var/celerybeat-schedule -l INFO >var/log/worker.log 2>&1 &
pids+=($!)
$BIN/python manage.py runserver "$HOST:$PORT" --noreload >var/log/web.log 2>&1 &
pids+=($!)

for _ in $(seq 1 60); do
  if $BIN/python - "$HOST" "$PORT" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/accounts/login/", timeout=1)
PY
  sleep 0.5
done

$BIN/python manage.py shell -v0 -c "
from teams.demo import demo_logins, DEMO_PASSWORD
print('Demo logins (password for all: %s):' % DEMO_PASSWORD)
for r in demo_logins(): print('  %-22s %-9s %s' % (r['username'], r['role'], r['team']))
"
echo
echo "Steward is running at http://$HOST:$PORT/  (API docs: /api/docs/, admin: /admin/)"
echo "Logs: var/log/web.log, var/log/worker.log. Press Ctrl-C to stop."
wait -n "${pids[@]}" || true
