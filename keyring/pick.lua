-- pick.lua takes the next usable key of the fleet-wide rotation, and its
-- share of the project's budgets, in one round trip.
--
-- KEYS[1] -> keyq:{pool}:rr, the shared rotation counter
-- KEYS[2] -> keyq:{pool}:pause, set while the whole pool is paused
-- KEYS[3 .. 2+n] -> keyq:{pool}:key:<fingerprint>, each slot's state hash
-- KEYS[3+n ..] -> per project p = 1..m, three keys: keyq:{pool}:proj:<p>
--                 (state hash), ...:rpm (log of this minute's calls, zset),
--                 ...:rpd:<Pacific date> (today's call count)
-- ARGV[1] -> n, the number of keys; ARGV[2] -> m, the number of projects
-- ARGV[3] -> calls per minute per project (0 = no limit)
-- ARGV[4] -> calls per day per project (0 = no limit)
-- ARGV[5] -> next midnight America/Los_Angeles, ms since the epoch
-- ARGV[6] -> the per-minute window in ms: a minute plus a margin, because
--            a call is counted here when picked and upstream when it arrives
-- ARGV[7 .. 6+n] -> the project number (1..m) of each slot
-- ARGV[7+n ..] -> 0-based slots to skip (keys this job run already tried)
--
-- The k-th pick in the fleet starts at slot (k-1) mod n and takes the first
-- usable slot from there: not skipped, not disabled, key and project not
-- cooling, project within budget. Skipped slots are taken only when no other
-- is usable. Time is Redis's, so that every replica agrees.
--
-- Returns {slot, 0} or, when no slot is usable, {-1, wait_ms, reason}:
-- wait_ms is when the first one may be, or -1 when none ever will.
local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])
local rpm, rpd, midnight, window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local paused = redis.call("PTTL", KEYS[2])
if paused > 0 then
  return {-1, paused, "pool paused: " .. (redis.call("GET", KEYS[2]) or "")}
end

local skip = {}
for i = 7 + n, #ARGV do
  skip[tonumber(ARGV[i])] = true
end

local wait, why = nil, "every key is disabled"
local function later(ms, reason)
  if wait == nil or ms < wait then
    wait, why = math.max(ms, 1), reason
  end
end

local function projectBase(s)
  return 2 + n + (tonumber(ARGV[7 + s]) - 1) * 3
end

local function usable(s)
  local st = redis.call("HMGET", KEYS[3 + s], "disabled", "until", "probe_at")
  if st[1] then
    if st[3] then
      later(tonumber(st[3]) - now, "every usable key is disabled until its next probe")
    end
    return false
  end
  if st[2] and tonumber(st[2]) > now then
    later(tonumber(st[2]) - now, "keys cooling down")
    return false
  end
  local base = projectBase(s)
  local pu = redis.call("HGET", KEYS[base + 1], "until")
  if pu and tonumber(pu) > now then
    later(tonumber(pu) - now, "projects cooling down")
    return false
  end
  if rpm > 0 then
    redis.call("ZREMRANGEBYSCORE", KEYS[base + 2], "-inf", now - window)
    if redis.call("ZCARD", KEYS[base + 2]) >= rpm then
      local oldest = redis.call("ZRANGE", KEYS[base + 2], 0, 0, "WITHSCORES")
      later(tonumber(oldest[2]) + window - now, "projects at their per-minute budget (GEMINI_RPM)")
      return false
    end
  end
  if rpd > 0 and tonumber(redis.call("GET", KEYS[base + 3]) or "0") >= rpd then
    later(midnight - now, "projects at their daily budget (GEMINI_RPD)")
    return false
  end
  return true
end

local c = redis.call("INCR", KEYS[1])
local start = (c - 1) % n
for pass = 1, 2 do
  for j = 0, n - 1 do
    local s = (start + j) % n
    if (skip[s] == nil) == (pass == 1) and usable(s) then
      local base = projectBase(s)
      if rpm > 0 then
        redis.call("ZADD", KEYS[base + 2], now, now .. ":" .. c)
        redis.call("PEXPIRE", KEYS[base + 2], window + 1000)
      end
      if rpd > 0 then
        redis.call("INCR", KEYS[base + 3])
        redis.call("PEXPIREAT", KEYS[base + 3], midnight + 3600000)
      end
      redis.call("HINCRBY", KEYS[3 + s], "picks", 1)
      return {s, 0}
    end
  end
end
return {-1, wait or -1, why}
