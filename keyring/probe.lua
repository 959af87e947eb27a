-- probe.lua claims the disabled keys whose probe is due, so that exactly one
-- replica probes each, and schedules the next probe on a growing interval.
--
-- KEYS[1 ..] -> keyq:{pool}:key:<fingerprint>, the state hashes to look at
-- ARGV[1] -> first interval ms; each probe doubles it
-- ARGV[2] -> longest interval ms
--
-- Returns the 1-based positions in KEYS of the keys to probe now.
local first, longest = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = {}
for i = 1, #KEYS do
  local st = redis.call("HMGET", KEYS[i], "disabled", "probe_at", "probe_n")
  if st[1] and st[2] and tonumber(st[2]) <= now then
    local n = tonumber(st[3] or "0") + 1
    local next = math.min(first * math.pow(2, math.min(n, 20)), longest)
    redis.call("HSET", KEYS[i], "probe_at", now + next, "probe_n", n)
    due[#due + 1] = i
  end
end
return due
