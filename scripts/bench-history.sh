#!/usr/bin/env bash
# The durability figures of docs/BENCHMARKS.md in one run: the same HTTP
# submission load (leaderboard bench) against the server with history off,
# on the embedded SQLite store, and on PostgreSQL, each over one leaderboard
# seeded with 1,000,000 participants (whose 1M audit events are written too).
# After each run it reads the server's /metrics: events written to the audit
# log, and the largest queue seen. JSON reports go to bench-results/ (not committed).
#
#   ./scripts/bench-history.sh [duration]     (default 10s per measurement)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
dur=${1:-10s}
out=bench-results/history-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
go build -o "$out/leaderboard" ./cmd/leaderboard
lb="$out/leaderboard"
pgurl="postgres://postgres@127.0.0.1:5432/test?search_path=lb_bench"

metric() { curl -fs "$1/metrics" | awk -v m="$2" '$1==m {print $2}'; }

for mode in ${MODES:-off sqlite postgres}; do
  port=$((20000 + RANDOM % 20000)); url=http://127.0.0.1:$port
  args=(--addr 127.0.0.1:$port --submit-rate 0 --auth off --ip-rate 0 --log-level warn)
  case $mode in
    off) args+=(--data-dir "") ;;
    sqlite) args+=(--data-dir "$out/data-sqlite") ;;
    postgres)
      psql -q -h 127.0.0.1 -U postgres test -c 'DROP SCHEMA IF EXISTS lb_bench CASCADE; CREATE SCHEMA lb_bench' >/dev/null
      args+=(--data-dir "$out/data-pg" --postgres-url "$pgurl") ;;
  esac
  "$lb" serve "${args[@]}" 2>"$out/server-$mode.log" &
  server=$!
  for _ in $(seq 100); do curl -fs "$url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  maxq=0
  ( while kill -0 $server 2>/dev/null; do q=$(metric "$url" leaderboard_history_queue || echo 0); echo "${q:-0}"; sleep 0.2; done ) >"$out/queue-$mode.txt" &
  sampler=$!
  run() { # name, bench args...
    local name=$mode-$1; shift
    "$lb" bench "$@" --json "$out/$name.json" >"$out/$name.txt" 2>"$out/$name.log"
    printf '%-22s %s   %s\n' "$name" "$(grep -E '^requests:' "$out/$name.txt" | sed 's/  */ /g')" \
      "$(grep -E '^latency ms:' "$out/$name.txt" | sed 's/  */ /g')"
  }
  run seed-1M    read   --url "$url" --seed-participants 1000000 --duration 1s --prefix bench
  # The seed's 1M audit events are still being written: measure once the queue is empty.
  for _ in $(seq 600); do q=$(metric "$url" leaderboard_history_queue || true); [ "${q:-0}" = 0 ] && break; sleep 0.2; done
  run submit-10k submit --url "$url" --create=false --rate 10000 --duration "$dur"
  run submit-max submit --url "$url" --create=false --duration "$dur"
  sleep 1
  written=$(metric "$url" leaderboard_history_events_written_total || true)
  commits=$(metric "$url" leaderboard_history_commits_total || true)
  secs=$(metric "$url" leaderboard_history_commit_seconds_total || true)
  versions=$(curl -fs "$url/v1/leaderboards?limit=1000" | python3 -c 'import json,sys; print(sum(b["version"] for b in json.load(sys.stdin)["leaderboards"]))')
  kill $sampler 2>/dev/null || true
  maxq=$(sort -g "$out/queue-$mode.txt" | tail -1)
  echo "$mode: accepted changes (sum of versions) $versions, audit events written ${written:-n/a}, commits ${commits:-n/a}, commit seconds ${secs:-n/a}, largest queue seen ${maxq:-n/a}"
  kill $server; wait $server 2>/dev/null || true
done
echo "reports in $out"
