-- pick.lua takes the next slot of the fleet-wide rotation in one round trip.
--
-- KEYS[1] -> keyq:{pool}:rr, the shared rotation counter
-- ARGV[1] -> n, the number of keys in the pool
-- ARGV[2..] -> 0-based slots to skip (keys this job run already tried)
--
-- Returns {slot, counter}: the k-th pick in the fleet lands on slot (k-1) mod n,
-- or on the first slot after it that is not skipped. When every slot is
-- skipped it lands on (k-1) mod n all the same: the caller decides.
local n = tonumber(ARGV[1])
local c = redis.call("INCR", KEYS[1])
local start = (c - 1) % n
if #ARGV == 1 then
  return {start, c}
end
local skip = {}
for i = 2, #ARGV do
  skip[tonumber(ARGV[i])] = true
end
for j = 0, n - 1 do
  local s = (start + j) % n
  if not skip[s] then
    return {s, c}
  end
end
return {start, c}
