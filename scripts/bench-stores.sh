#!/usr/bin/env bash
# The embedded ranking store against the Redis store, same tool, same run:
# the same HTTP submission load (leaderboard bench) against `serve` with
# rankings in memory and with --redis-url (history off in both, so that only
# the ranking store differs), each over one leaderboard of 1,000,000
# participants. Redis must run at 127.0.0.1:6379 (scripts/test.sh starts it);
# the run's keys are deleted afterwards. Reports go to bench-results/.
#
#   ./scripts/bench-stores.sh [duration]     (default 10s per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
dur=${1:-10s}
out=bench-results/stores-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
go build -o "$out/leaderboard" ./cmd/leaderboard
lb="$out/leaderboard"
prefix="lbbench$RANDOM:"
trap 'redis-cli -h 127.0.0.1 --scan --pattern "${prefix}*" | xargs -r -n 500 redis-cli -h 127.0.0.1 del >/dev/null' EXIT

for mode in memory redis; do
  port=$((20000 + RANDOM % 20000)); url=http://127.0.0.1:$port
  args=(--addr 127.0.0.1:$port --submit-rate 0 --auth off --ip-rate 0 --log-level warn --data-dir "")
  [ $mode = redis ] && args+=(--redis-url redis://127.0.0.1:6379/0 --redis-prefix "$prefix")
  "$lb" serve "${args[@]}" 2>"$out/server-$mode.log" &
  server=$!
  for _ in $(seq 100); do curl -fs "$url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  run() { # name, bench args...
    local name=$mode-$1; shift
    "$lb" bench "$@" --json "$out/$name.json" >"$out/$name.txt" 2>"$out/$name.log"
    printf '%-20s %s   %s\n' "$name" "$(grep -E '^requests:' "$out/$name.txt" | sed 's/  */ /g')" \
      "$(grep -E '^latency ms:' "$out/$name.txt" | sed 's/  */ /g')"
    grep -E '^scores:' "$out/$name.txt" | sed 's/^/                     /' || true
  }
  run seed-1M    read   --url "$url" --seed-participants 1000000 --duration 1s --prefix bench
  run submit-10k submit --url "$url" --create=false --rate 10000 --duration "$dur"
  run submit-max submit --url "$url" --create=false --duration "$dur"
  run batch-max  submit --url "$url" --create=false --batch 1000 --connections 4 --duration "$dur"
  kill $server; wait $server 2>/dev/null || true
done
echo "reports in $out"
