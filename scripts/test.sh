#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: checks the toolchain,
# fetches the Go modules, then runs the whole suite under the race detector.
# Later releases add the services their tests need (Redis, PostgreSQL) here.
#
#   ./scripts/test.sh            all tests
#   ./scripts/test.sh ./internal/rank/...   a subset (arguments go to go test)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "test.sh: Go 1.26 or newer is required (https://go.dev/dl/); apt-get install golang-go is too old on most releases" >&2
    exit 1
  fi
fi

go mod download

# The web page's browser tests (internal/web) drive headless Chromium. Install
# Debian's package when it is missing and this runs as root (CI does);
# otherwise those tests skip, or fail with a message saying so when CI=true.
if [ ! -x /usr/bin/chromium ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing chromium for the browser tests" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; } >/tmp/test-sh-chromium.log 2>&1; then
      echo "test.sh: could not install chromium (see /tmp/test-sh-chromium.log); the browser tests will say so" >&2
    fi
  else
    echo "test.sh: chromium is not installed (apt-get install chromium); the browser tests will skip, or fail in CI" >&2
  fi
fi

# The PostgreSQL history store's tests (internal/history/postgres) run against
# a real server: LEADERBOARD_TEST_POSTGRES_URL, by default the machine's own at
# 127.0.0.1:5432 (trust auth, user postgres, database test). When that default
# is used, start the machine's clusters if they are down and create database
# test if it is missing. Quiet when all is well; on failure it says so and goes
# on: the tests then skip, or fail when CI is set.
ensure_postgres() {
  [ -z "${LEADERBOARD_TEST_POSTGRES_URL:-}" ] || return 0
  command -v pg_isready >/dev/null 2>&1 || {
    echo "test.sh: PostgreSQL is not installed (apt-get install postgresql); the postgres history tests will skip, or fail in CI" >&2
    return 0
  }
  local log=/tmp/test-sh-postgres.log
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "test.sh: starting PostgreSQL for the history tests" >&2
    if command -v pg_lsclusters >/dev/null 2>&1; then
      # As root, pg_ctlcluster runs the server as the cluster's owner.
      pg_lsclusters -h 2>>"$log" | while read -r ver name _port status _rest; do
        case "$status" in
          online*) ;;
          *) pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >>"$log" 2>&1 || true ;;
        esac
      done || true
    else
      service postgresql start >>"$log" 2>&1 || true
    fi
    local i
    for i in $(seq 1 30); do
      pg_isready -q -h 127.0.0.1 -p 5432 && break
      sleep 1
    done
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
      echo "test.sh: PostgreSQL did not start (see $log); the postgres history tests will skip, or fail in CI" >&2
      return 0
    fi
  fi
  if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -XAtqc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>>"$log")" != 1 ]; then
    createdb -h 127.0.0.1 -U postgres test >>"$log" 2>&1 ||
      echo "test.sh: could not create PostgreSQL database test (see $log)" >&2
  fi
}
ensure_postgres

# The Redis ranking store's tests (internal/store/redis) run against a real
# Redis: LEADERBOARD_TEST_REDIS_URL, by default 127.0.0.1:6379, and start a
# 3-master Redis Cluster of their own with redis-server and redis-cli. Install
# redis-server when it is missing and this runs as root (CI does); when the
# default is used and nothing answers there, start the service, or else a bare
# redis-server without persistence. Quiet when all is well; on failure it says
# so and goes on: the tests then skip, or fail when CI is set.
ensure_redis() {
  local log=/tmp/test-sh-redis.log
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "test.sh: installing redis-server for the Redis store tests" >&2
      if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools; } >>"$log" 2>&1; then
        echo "test.sh: could not install redis-server (see $log); the Redis store tests will skip, or fail in CI" >&2
        return 0
      fi
    else
      echo "test.sh: redis-server is not installed (apt-get install redis-server); the Redis store tests will skip, or fail in CI" >&2
      return 0
    fi
  fi
  [ -z "${LEADERBOARD_TEST_REDIS_URL:-}" ] || return 0
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
  echo "test.sh: starting Redis for the Redis store tests" >&2
  service redis-server start >>"$log" 2>&1 || true
  local i
  for i in $(seq 1 20); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir /tmp --logfile /tmp/test-sh-redis-server.log >>"$log" 2>&1 || true
  for i in $(seq 1 20); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "test.sh: Redis did not start (see $log); the Redis store tests will skip, or fail in CI" >&2
}
ensure_redis

if [ "$#" -eq 0 ]; then
  set -- ./...
fi
exec go test -race -count=1 -timeout 15m "$@"
