package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Each touches the keys of one leaderboard only (all hash-
// tagged {board}, so one Cluster slot) and runs atomically in Redis: that is
// what makes a leaderboard's versions gap-free across any number of processes.
//
// Numbers: Redis Lua numbers are doubles, exact for every integer up to 2^53,
// so comparisons and version arithmetic are exact. Lua's own number-to-string
// conversion (%.14g) is not, so a script never turns a score into a string:
// scores travel as the decimal strings Go wrote, and versions are formatted
// with string.format('%d'), which prints a 64-bit integer.
//
// Replies are flat arrays whose first element is a status code.
const (
	codeOK               = 0
	codeNoBoard          = 1 // for create and restore: the board exists
	codeSealed           = 2
	codeNoParticipant    = 3
	codeDuplicateEntries = 4
	codePaused           = 5
)

// pauseScript: KEYS m; ARGV "1" (paused) or "0".
var pauseScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {1} end
redis.call('HSET', KEYS[1], 'pz', ARGV[1])
return {0}
`)

// createScript: KEYS m z p o; ARGV order policy gen.
var createScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1], 'v', '0', 'o', ARGV[1], 'pl', ARGV[2], 's', '0', 'g', ARGV[3], 'b', '0')
return {0}
`)

// restoreScript publishes a restored board built in the temporary keys tz and
// tp: KEYS m z p o tz tp; ARGV order policy gen version count.
var restoreScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('UNLINK', KEYS[5], KEYS[6])
  return {1}
end
local n = tonumber(ARGV[5])
if n > 0 and (redis.call('ZCARD', KEYS[5]) ~= n or redis.call('HLEN', KEYS[6]) ~= n) then
  redis.call('UNLINK', KEYS[5], KEYS[6])
  return {4}
end
redis.call('UNLINK', KEYS[2], KEYS[3], KEYS[4])
if n > 0 then
  redis.call('RENAME', KEYS[5], KEYS[2])
  redis.call('RENAME', KEYS[6], KEYS[3])
  redis.call('PERSIST', KEYS[2])
  redis.call('PERSIST', KEYS[3])
end
redis.call('HSET', KEYS[1], 'v', ARGV[4], 'o', ARGV[1], 'pl', ARGV[2], 's', '0', 'g', ARGV[3], 'b', ARGV[4])
return {0}
`)

// dropScript: KEYS m z p o; ARGV retention (ms). The outbox is kept, with
// an expiry, for the relay: the changes accepted just before the drop (a
// completed leaderboard's last ones) may not be on the bus yet.
var dropScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {1} end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3])
redis.call('PEXPIRE', KEYS[4], ARGV[1])
return {0}
`)

// forgetRetiredScript: KEYS m o; ARGV afterID. Reply 1 when the outbox of a
// dropped leaderboard holds nothing after afterID ("" = nothing at all): the
// relay is done with it (its outbox is deleted unless the leaderboard was
// made again); 0 otherwise.
var forgetRetiredScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if ARGV[1] == '' then
  if redis.call('XLEN', KEYS[2]) > 0 then return 0 end
elseif #redis.call('XRANGE', KEYS[2], '(' .. ARGV[1], '+', 'COUNT', 1) > 0 then
  return 0
end
redis.call('UNLINK', KEYS[2])
return 1
`)

// submitScript applies submissions in order: KEYS m z p o; ARGV maxlen n, then
// n times: participant, score, achieved_at (13 digits), 2^53-1-score.
// Reply: 0, gen, base, then per submission: updated, score, achieved_at, rank,
// had_previous, previous score, previous rank, version, outbox stream id.
var submitScript = goredis.NewScript(`
local m, z, p, o = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local meta = redis.call('HMGET', m, 'v', 'o', 'pl', 's', 'g', 'b', 'pz')
if not meta[1] then return {1} end
if meta[4] == '1' then return {2} end
if meta[7] == '1' then return {5} end
local v = tonumber(meta[1])
local v0 = v
local desc = meta[2] == '0'
local best = meta[3] == '1'
local maxlen = ARGV[1]
local n = tonumber(ARGV[2])
local out = {0, meta[5], meta[6]}
local k = 3
for i = 0, n - 1 do
  local pid, s, at, dz = ARGV[3 + i*4], ARGV[4 + i*4], ARGV[5 + i*4], ARGV[6 + i*4]
  local mem = at .. pid
  local old = redis.call('HGET', p, pid)
  local had, os, orank, keep = 0, '0', 0, false
  if old then
    local sep = string.find(old, ':', 1, true)
    os = string.sub(old, 1, sep - 1)
    local oat = string.sub(old, sep + 1)
    local om = oat .. pid
    orank = redis.call('ZRANK', z, om) + 1
    had = 1
    local on, nn = tonumber(os), tonumber(s)
    if on == nn or (best and ((desc and nn < on) or (not desc and nn > on))) then
      keep = true
      out[k+1], out[k+2], out[k+3], out[k+4], out[k+5], out[k+6], out[k+7], out[k+8], out[k+9] =
        0, os, oat, orank, 1, os, orank, v, ''
      k = k + 9
    elseif om ~= mem then
      redis.call('ZREM', z, om)
    end
  end
  if not keep then
    if desc then redis.call('ZADD', z, dz, mem) else redis.call('ZADD', z, s, mem) end
    redis.call('HSET', p, pid, s .. ':' .. at)
    local nr = redis.call('ZRANK', z, mem) + 1
    v = v + 1
    local id = redis.call('XADD', o, 'MAXLEN', '~', maxlen, '*',
      'v', string.format('%d', v), 'p', pid, 'h', had, 'os', os, 'or', orank, 'ns', s, 'nr', nr, 'at', at)
    out[k+1], out[k+2], out[k+3], out[k+4], out[k+5], out[k+6], out[k+7], out[k+8], out[k+9] =
      1, s, at, nr, had, os, orank, v, id
    k = k + 9
  end
end
if v ~= v0 then redis.call('HSET', m, 'v', string.format('%d', v)) end
return out
`)

// removeScript: KEYS m z p o; ARGV maxlen participant.
// Reply: 0, gen, base, previous score, previous rank, version, stream id.
var removeScript = goredis.NewScript(`
local meta = redis.call('HMGET', KEYS[1], 'v', 's', 'g', 'b')
if not meta[1] then return {1} end
if meta[2] == '1' then return {2} end
local pid = ARGV[2]
local old = redis.call('HGET', KEYS[3], pid)
if not old then return {3} end
local sep = string.find(old, ':', 1, true)
local os, oat = string.sub(old, 1, sep - 1), string.sub(old, sep + 1)
local om = oat .. pid
local orank = redis.call('ZRANK', KEYS[2], om) + 1
redis.call('ZREM', KEYS[2], om)
redis.call('HDEL', KEYS[3], pid)
local v = tonumber(meta[1]) + 1
local vs = string.format('%d', v)
redis.call('HSET', KEYS[1], 'v', vs)
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[1], '*',
  'v', vs, 'p', pid, 'r', '1', 'h', '1', 'os', os, 'or', orank, 'ns', '0', 'nr', '0', 'at', '0')
return {0, meta[3], meta[4], os, orank, vs, id}
`)

// sealScript: KEYS m z. Reply: 0, version, total.
var sealScript = goredis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {1} end
redis.call('HSET', KEYS[1], 's', '1')
return {0, v, redis.call('ZCARD', KEYS[2])}
`)

// statsScript: KEYS m z. Reply: 0, version, total.
var statsScript = goredis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {1} end
return {0, v, redis.call('ZCARD', KEYS[2])}
`)

// pageScript reads 0-based ranks start..stop: KEYS m z; ARGV start stop.
// Reply: 0, version, order, total, then member, zscore pairs.
var pageScript = goredis.NewScript(`
local meta = redis.call('HMGET', KEYS[1], 'v', 'o')
if not meta[1] then return {1} end
local n = redis.call('ZCARD', KEYS[2])
local r = {0, meta[1], meta[2], n}
local a, b = tonumber(ARGV[1]), tonumber(ARGV[2])
if b >= a and a < n then
  local got = redis.call('ZRANGE', KEYS[2], a, b, 'WITHSCORES')
  for i = 1, #got do r[4 + i] = got[i] end
end
return r
`)

// windowScript reads the ranks around a participant: KEYS m z p; ARGV
// participant before limit: 1-based ranks rank-before .. rank-before+limit-1,
// clipped to the board. Reply: 0, version, order, total, first rank, the
// participant's rank, then member, zscore pairs.
var windowScript = goredis.NewScript(`
local meta = redis.call('HMGET', KEYS[1], 'v', 'o')
if not meta[1] then return {1} end
local pid = ARGV[1]
local cur = redis.call('HGET', KEYS[3], pid)
if not cur then return {3} end
local sep = string.find(cur, ':', 1, true)
local rank = redis.call('ZRANK', KEYS[2], string.sub(cur, sep + 1) .. pid) + 1
local n = redis.call('ZCARD', KEYS[2])
local lo = rank - tonumber(ARGV[2])
local hi = lo + tonumber(ARGV[3]) - 1
if lo < 1 then lo = 1 end
if hi > n then hi = n end
local r = {0, meta[1], meta[2], n, lo, rank}
if hi >= lo then
  local got = redis.call('ZRANGE', KEYS[2], lo - 1, hi - 1, 'WITHSCORES')
  for i = 1, #got do r[6 + i] = got[i] end
end
return r
`)

// tailScript reads where a board's outbox is now: KEYS m o.
// Reply: 0, version, gen, base, id of the last outbox entry (” when empty).
var tailScript = goredis.NewScript(`
local meta = redis.call('HMGET', KEYS[1], 'v', 'g', 'b')
if not meta[1] then return {1} end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local id = ''
if #last > 0 then id = last[1][1] end
return {0, meta[1], meta[2], meta[3], id}
`)
