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

if [ "$#" -eq 0 ]; then
  set -- ./...
fi
exec go test -race -count=1 -timeout 15m "$@"
