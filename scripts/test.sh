#!/usr/bin/env bash
# make test: the whole suite twice.
#   pass 1: the embedded default (SQLite file + Celery's filesystem broker + a real worker);
#   pass 2: PostgreSQL + Redis + a real worker. Skipped with a reason when they are unreachable,
#           except under CI (CI set), where unreachable services fail the run.
# The two passes share nothing (database, broker, var folder, worker), so they run at the same
# time: much of each pass waits on its worker, its browser or its database, and the whole run
# takes about as long as the longer pass. STEWARD_TEST_SERIAL=1 runs them one after the other.
# The PostgreSQL pass's output is printed once it ends (its log: $WORK/postgres.log).
# Every database and broker key this creates is named after this run and removed afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export SECRET_KEY="test-only-secret-key"
export DEBUG=0
export HF_HUB_OFFLINE=1
unset DATABASE_URL CELERY_BROKER_URL CELERY_KEY_PREFIX
RUN_ID="$(date +%s)_$$"
PG_BASE="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}"
WORK="$(mktemp -d -t steward-test-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

run_pass() {  # name, then pytest arguments
  local name="$1"; shift
  echo
  echo "==================== pass: $name ===================="
  $BIN/pytest "$@"
}

echo "==> browser"
if browser_reason="$(bash scripts/install_browser.sh)"; then
  echo "Chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
else
  export STEWARD_BROWSER_UNAVAILABLE="$browser_reason"
  echo "Browser tests will skip: $browser_reason"
fi

echo "==> ruff"
$BIN/ruff check . || exit 1

echo "==> import contract (pyproject.toml [tool.importlinter])"
$BIN/lint-imports || exit 1

pg_pass() {  # the PostgreSQL + Redis pass; its exit status
  local status
  DATABASE_URL="$PG_BASE/steward_$RUN_ID" \
  CELERY_BROKER_URL="$REDIS_URL" \
  CELERY_KEY_PREFIX="steward-test-$RUN_ID:" \
  STEWARD_VAR_DIR="$WORK/postgres" \
    run_pass "postgresql + redis broker" "$@"
  status=$?
  $BIN/python - "$REDIS_URL" "steward-test-$RUN_ID:" <<'PY' || true
import sys, redis
client = redis.Redis.from_url(sys.argv[1])
keys = list(client.scan_iter(match=sys.argv[2] + "*"))
if keys:
    client.delete(*keys)
PY
  return $status
}

status_pg=0
pg_pid=""
if reason="$($BIN/python scripts/check_services.py "$PG_BASE/postgres" "$REDIS_URL")"; then
  if [ -n "${STEWARD_TEST_SERIAL:-}" ]; then
    run_pg_later=1
  else
    echo "==> the PostgreSQL pass runs alongside (its output follows the SQLite pass's)"
    pg_pass "$@" > "$WORK/postgres.log" 2>&1 &
    pg_pid=$!
  fi
elif [ -n "${CI:-}" ]; then
  echo "FAIL: the PostgreSQL + Redis pass cannot run under CI: $reason"
  status_pg=1
else
  echo
  echo "SKIPPED the PostgreSQL + Redis pass: $reason"
fi

STEWARD_VAR_DIR="$WORK/sqlite" run_pass "sqlite + filesystem broker" "$@"
status_sqlite=$?

if [ -n "$pg_pid" ]; then
  wait "$pg_pid"
  status_pg=$?
  cat "$WORK/postgres.log"
elif [ -n "${run_pg_later:-}" ]; then
  pg_pass "$@"
  status_pg=$?
fi

echo
echo "==> sqlite pass exit $status_sqlite, postgresql pass exit $status_pg"
[ "$status_sqlite" -eq 0 ] && [ "$status_pg" -eq 0 ]
