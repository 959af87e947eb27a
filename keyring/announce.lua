-- announce.lua records the keys one replica holds (by fingerprint) and
-- makes the pool the union of the sets of the replicas alive: a key that
-- joins goes into the rotation (in list order, ahead of the others; or to
-- wait while its project cools), a key no live replica holds leaves it.
-- Key state is by fingerprint and outlives a key's absence.
--
-- KEYS[1] -> ...:members, KEYS[2] -> ...:ring, KEYS[3] -> ...:wait,
-- KEYS[4] -> ...:why, KEYS[5] -> ...:parked, KEYS[6] -> ...:projkeys,
-- KEYS[7] -> ...:order, KEYS[8] -> ...:disabled, KEYS[9] -> ...:projuntil,
-- KEYS[10] -> ...:replicas, KEYS[11] -> ...:seen, KEYS[12] -> ...:rr
--            (see redis_keys.go)
-- KEYS[13] -> keyq:{pool}:set:<digest>, this replica's set
-- KEYS[14 ..] -> the sets of the other digests the caller read from replicas
-- ARGV[1] -> replica id; ARGV[2] -> its digest; ARGV[3] -> how long a
--            replica not seen counts as alive, ms
-- ARGV[4] -> n, the number of keys; ARGV[5] -> how many digests KEYS[14 ..]
-- ARGV[6 .. 5+2n] -> fingerprint, "index|project", for each key in order
-- ARGV[6+2n ..] -> the digests of KEYS[14 ..], in order
--
-- Returns {added, removed}, or {-1} when a live replica's set was not
-- passed (one announced meanwhile): read again and retry.
local id, digest, live = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n, nd = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = nowMs()

redis.call("HSET", KEYS[10], id, digest)
redis.call("ZADD", KEYS[11], now, id)
for _, dead in ipairs(redis.call("ZRANGEBYSCORE", KEYS[11], "-inf", now - live)) do
  redis.call("ZREM", KEYS[11], dead)
  redis.call("HDEL", KEYS[10], dead)
end

local setOf = {[digest] = KEYS[13]}
for i = 1, nd do
  setOf[ARGV[5 + 2 * n + i]] = KEYS[13 + i]
end
local sets, counted = {}, {}
for _, r in ipairs(redis.call("ZRANGE", KEYS[11], 0, -1)) do
  local d = redis.call("HGET", KEYS[10], r)
  if d and not counted[d] then
    if not setOf[d] then
      return {-1}
    end
    counted[d] = true
    sets[#sets + 1] = setOf[d]
  end
end

redis.call("DEL", KEYS[13])
local batch = {}
for i = 1, n do
  batch[#batch + 1] = ARGV[4 + 2 * i]
  if #batch == 1000 or i == n then
    redis.call("SADD", KEYS[13], unpack(batch))
    batch = {}
  end
end
redis.call("PEXPIRE", KEYS[13], 604800000)

local base = tonumber(redis.call("GET", KEYS[12]) or "0") - n - 1
local added, removed = 0, 0
for i = 1, n do
  local fp, v = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  redis.call("HSET", KEYS[1], fp, v)
  redis.call("ZADD", KEYS[7], tonumber(string.match(v, "^(%d+)|")), fp)
  if not (redis.call("ZSCORE", KEYS[2], fp) or redis.call("ZSCORE", KEYS[3], fp) or redis.call("ZSCORE", KEYS[8], fp)) then
    added = added + 1
    local s = redis.call("HGET", KEYS[5], fp) or (base + i)
    local pu = tonumber(redis.call("HGET", KEYS[9], string.match(v, "^[^|]*|(.*)$")) or "0")
    if pu > now then
      redis.call("HSET", KEYS[5], fp, s)
      redis.call("ZADD", KEYS[3], pu, fp)
      redis.call("HSET", KEYS[4], fp, "project")
    else
      redis.call("HDEL", KEYS[5], fp)
      redis.call("ZADD", KEYS[2], s, fp)
    end
  end
end

local byProject = {}
local all = redis.call("HGETALL", KEYS[1])
for i = 1, #all, 2 do
  local fp = all[i]
  local held = false
  for _, s in ipairs(sets) do
    if redis.call("SISMEMBER", s, fp) == 1 then
      held = true
      break
    end
  end
  if held then
    local p = string.match(all[i + 1], "^[^|]*|(.*)$")
    byProject[p] = (byProject[p] and byProject[p] .. " " or "") .. fp
  else
    removed = removed + 1
    redis.call("HDEL", KEYS[1], fp)
    redis.call("ZREM", KEYS[7], fp)
    local s = redis.call("ZSCORE", KEYS[2], fp)
    if s then
      redis.call("ZREM", KEYS[2], fp)
      redis.call("HSET", KEYS[5], fp, s)
    end
  end
end
redis.call("DEL", KEYS[6])
batch = {}
for p, fps in pairs(byProject) do
  batch[#batch + 1] = p
  batch[#batch + 1] = fps
  if #batch >= 1000 then
    redis.call("HSET", KEYS[6], unpack(batch))
    batch = {}
  end
end
if #batch > 0 then
  redis.call("HSET", KEYS[6], unpack(batch))
end
return {added, removed}
