#!/usr/bin/env bash
# The HTTP figures of docs/BENCHMARKS.md in one run: builds the binary, starts
# `leaderboard serve` on a free loopback port, seeds one leaderboard with
# 1,000,000 participants, and measures with `leaderboard bench`, beside the
# trivial net/http floor measured by the same tool in the same run.
# JSON reports go to bench-results/ (not committed); a summary is printed.
#
#   ./scripts/bench-http.sh [duration]     (default 10s per measurement)
#   HISTORY=off ./scripts/bench-http.sh    the same without persistence (--data-dir ""): the ranking
#                                          service alone, not bounded by the audit log's write rate
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
dur=${1:-10s}
out=bench-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
go build -o "$out/leaderboard" ./cmd/leaderboard
lb="$out/leaderboard"

port=$((20000 + RANDOM % 20000))
url=http://127.0.0.1:$port
# Per-participant rate limit off: the load tool is one client submitting for a million participants.
# Authentication on (the default) with a secret for this run; the tool mints an admin token from it
# (--secret), which the per-IP limits exempt.
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export LEADERBOARD_BENCH_SECRET=$secret
datadir="$out/data"
[ "${HISTORY:-on}" = off ] && datadir=""
"$lb" serve --addr 127.0.0.1:$port --submit-rate 0 --log-level warn --auth-secret "$secret" --data-dir "$datadir" 2>"$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "$url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

run() { # name, bench args...
  local name=$1; shift
  "$lb" bench "$@" --json "$out/$name.json" >"$out/$name.txt" 2>"$out/$name.log"
  printf '%-26s %s   %s\n' "$name" "$(grep -E '^requests:' "$out/$name.txt" | sed 's/  */ /g')" \
    "$(grep -E '^latency ms:' "$out/$name.txt" | sed 's/  */ /g')"
  grep -E '^scores:' "$out/$name.txt" | sed 's/^/                           /' || true
}

# One leaderboard of 1,000,000 participants for every measurement below
# (read --seed-participants loads it through scores:batch; its reads count as a warm-up).
run seed-1M           read  --url "$url" --seed-participants 1000000 --duration 2s --prefix bench
# The seed's 1M audit events are written to the embedded database in the background: measure once done.
for _ in $(seq 600); do
  q=$(curl -fs "$url/metrics" | awk '$1=="leaderboard_history_queue" {print $2}')
  [ "${q:-0}" = 0 ] && break; sleep 0.2
done
run floor-get         floor --duration "$dur"
run floor-post        floor --duration "$dur" --method POST
run floor-get-9500B   floor --duration "$dur" --body-bytes 9500
run submit-10k        submit --url "$url" --create=false --rate 10000 --duration "$dur"
run submit-max        submit --url "$url" --create=false --duration "$dur"
run batch-max         submit --url "$url" --create=false --batch 1000 --connections 4 --duration "$dur"
# Batches spread over 4 leaderboards of 250,000: one ordered writer per board, so both cores write.
run seed-4x250k       read  --url "$url" --prefix multi --leaderboards 4 --seed-participants 250000 --duration 1s
for _ in $(seq 600); do
  q=$(curl -fs "$url/metrics" | awk '$1=="leaderboard_history_queue" {print $2}')
  [ "${q:-0}" = 0 ] && break; sleep 0.2
done
run batch-max-4boards submit --url "$url" --prefix multi --leaderboards 4 --participants 250000 --create=false --batch 1000 --connections 4 --duration "$dur"
run read-top100       read  --url "$url" --create=false --seed-participants 1 --duration "$dur"
run read-participant  read  --url "$url" --create=false --seed-participants 1 --top-ratio 0 --duration "$dur"
echo "reports in $out"
