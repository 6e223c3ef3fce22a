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

if [ "$#" -eq 0 ]; then
  set -- ./...
fi
exec go test -race -count=1 -timeout 15m "$@"
