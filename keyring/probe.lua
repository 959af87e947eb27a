-- probe.lua claims a bounded batch of the disabled keys whose probe is due
-- and that this replica holds, so that exactly one replica probes each, and
-- schedules each one's next probe on a growing interval, spread by up to
-- 10% so that keys disabled together drift apart.
--
-- KEYS[1] -> keyq:{pool}:probe, zset fp -> ms its next probe is due
-- KEYS[2] -> keyq:{pool}:proben, hash fp -> probes since it was disabled
-- KEYS[3] -> keyq:{pool}:set:<digest>, the fingerprints this replica holds
-- ARGV[1] -> first interval ms; each probe doubles it
-- ARGV[2] -> longest interval ms
-- ARGV[3] -> most keys to claim
-- ARGV[4] -> a random number 0..99, to spread the next probes
--
-- Returns the fingerprints to probe now, at most ARGV[3].
local first, longest, batch, seed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = {}
for _, fp in ipairs(redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, 4 * batch)) do
  if #due >= batch then
    break
  end
  if redis.call("SISMEMBER", KEYS[3], fp) == 1 then
    local n = redis.call("HINCRBY", KEYS[2], fp, 1)
    local next = math.min(first * math.pow(2, math.min(n, 20)), longest)
    next = next + math.floor(next * ((seed + #due * 37) % 100) / 1000)
    redis.call("ZADD", KEYS[1], now + next, fp)
    due[#due + 1] = fp
  end
end
return due
