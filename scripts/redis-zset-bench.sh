#!/usr/bin/env bash
# Redis's own figures for the ranking reference: a sorted set of 1,000,000
# members with 16-byte ids, then ZADD (random member, random score),
# ZREVRANK (random member) and ZREVRANGE 0 99 WITHSCORES, measured with
# redis-benchmark against the Redis on this machine, without pipelining
# (one request per round trip, like a service calling Redis) and with -P 64
# (Redis's own command throughput on its single thread).
#
#   ./scripts/redis-zset-bench.sh [host] [port]
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:-6379}
key=lb:zset-bench
n=1000000
cli=(redis-cli -h "$host" -p "$port")

"${cli[@]}" del "$key" >/dev/null
# Members idx:000000000000 .. idx:000000999999 (16 bytes), loaded through --pipe.
awk -v n=$n -v key=$key 'BEGIN { srand(1); for (i = 0; i < n; i++) {
  m = sprintf("idx:%012d", i); s = int(rand() * 1e9);
  printf "*4\r\n$4\r\nZADD\r\n$%d\r\n%s\r\n$%d\r\n%d\r\n$%d\r\n%s\r\n", length(key), key, length(s ""), s, length(m), m } }' |
  "${cli[@]}" --pipe >/dev/null
echo "members: $("${cli[@]}" zcard $key)   memory: $("${cli[@]}" memory usage $key) bytes"

for pipeline in 1 64; do
  for cmd in "ZADD $key __rand_int__ idx:__rand_int__" "ZREVRANK $key idx:__rand_int__" "ZREVRANGE $key 0 99 WITHSCORES"; do
    # -r 1000000 keeps __rand_int__ inside the loaded members (12 zero-padded digits).
    redis-benchmark -h "$host" -p "$port" -q -n 400000 -r $n -c 50 -P $pipeline --csv $cmd 2>/dev/null |
      sed -n 2p | awk -F, -v p=$pipeline -v c="${cmd%% *}" '{gsub(/"/,""); printf "%-10s -P %-3s %12s req/s   p50 %s ms  p99 %s ms\n", c, p, $2, $5, $7}'
  done
done
"${cli[@]}" del "$key" >/dev/null
