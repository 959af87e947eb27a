-- admin.lua enables or disables one key by hand.
--
-- KEYS[1] -> keyq:{pool}:key:<fingerprint>, the key's state hash
-- KEYS[2] -> ...:ring, KEYS[3] -> ...:wait, KEYS[4] -> ...:why,
-- KEYS[5] -> ...:parked, KEYS[6] -> ...:disabled, KEYS[7] -> ...:probe,
-- KEYS[8] -> ...:proben, KEYS[9] -> ...:projuntil, KEYS[10] -> ...:members,
-- KEYS[11] -> ...:keyuntil
--            (see redis_keys.go)
-- ARGV[1] -> "enable" or "disable"
-- ARGV[2] -> the key's fingerprint
-- ARGV[3] -> reason (disable)
--
-- Returns 0 when no replica announced the key, else 1. Enabling clears the
-- key's own cooldown and strikes; its project's cooldown still applies.
local op, fp, reason = ARGV[1], ARGV[2], ARGV[3]
local member = redis.call("HGET", KEYS[10], fp)
if not member then
  return 0
end
local now = nowMs()
local ring, wait, why, parked = KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if op == "disable" then
  redis.call("HSET", KEYS[1], "disabled", reason, "disabled_at", now)
  pull(ring, wait, why, parked, fp)
  redis.call("ZADD", KEYS[6], now, fp)
  redis.call("ZREM", KEYS[7], fp)
  redis.call("HDEL", KEYS[8], fp)
  return 1
end
redis.call("HDEL", KEYS[1], "disabled", "disabled_at", "probe_at", "probe_n", "strikes", "until", "reason")
redis.call("ZREM", KEYS[6], fp)
redis.call("ZREM", KEYS[7], fp)
redis.call("HDEL", KEYS[8], fp)
redis.call("HDEL", KEYS[11], fp)
local project = string.match(member, "^[^|]*|(.*)$") or ""
local pu = tonumber(redis.call("HGET", KEYS[9], project) or "0")
if pu > now then
  pull(ring, wait, why, parked, fp)
  redis.call("ZADD", wait, pu, fp)
  redis.call("HSET", why, fp, "project")
elseif not redis.call("ZSCORE", ring, fp) then
  unrest(ring, wait, why, parked, fp)
end
return 1
