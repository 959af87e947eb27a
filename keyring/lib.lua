-- lib.lua holds the helpers shared by the scripts that move keys between
-- the rotation (ring), the waiting room (wait) and the disabled; it is
-- prepended to pick.lua, report.lua and admin.lua and reads no KEYS itself.
-- Every key it touches is passed in by the caller, from the caller's KEYS.

local function nowMs()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- rest takes fp out of the rotation until untilMs, or leaves it waiting
-- longer if it already does; a disabled or unknown key is left alone.
local function rest(ring, wait, why, parked, fp, untilMs, code)
  local s = redis.call("ZSCORE", ring, fp)
  if s then
    redis.call("ZREM", ring, fp)
    redis.call("HSET", parked, fp, s)
    redis.call("ZADD", wait, untilMs, fp)
    redis.call("HSET", why, fp, code)
    return
  end
  local w = redis.call("ZSCORE", wait, fp)
  if w and tonumber(w) < untilMs then
    redis.call("ZADD", wait, untilMs, fp)
    redis.call("HSET", why, fp, code)
  end
end

-- unrest puts fp back in the rotation where it stood when it left.
local function unrest(ring, wait, why, parked, fp)
  redis.call("ZREM", wait, fp)
  redis.call("HDEL", why, fp)
  local s = redis.call("HGET", parked, fp) or "0"
  redis.call("HDEL", parked, fp)
  redis.call("ZADD", ring, s, fp)
end

-- projectKeys lists the fingerprints of project p (projkeys: p -> "fp fp").
local function projectKeys(projkeys, p)
  local out = {}
  for fp in string.gmatch(redis.call("HGET", projkeys, p) or "", "%S+") do
    out[#out + 1] = fp
  end
  return out
end

-- pull takes fp out of the rotation and the waiting room for good (until
-- enabled): its place in the rotation is kept in parked.
local function pull(ring, wait, why, parked, fp)
  local s = redis.call("ZSCORE", ring, fp)
  if s then
    redis.call("ZREM", ring, fp)
    redis.call("HSET", parked, fp, s)
  end
  redis.call("ZREM", wait, fp)
  redis.call("HDEL", why, fp)
end

