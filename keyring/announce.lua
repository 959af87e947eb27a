-- announce.lua records the keys one replica holds (by fingerprint) and
-- makes the pool the union of the sets of the replicas alive: a key that
-- joins goes into the rotation (in list order, ahead of the others), or to
-- wait or the disabled as its own state hash and its project's say; a key
-- no live replica holds leaves it. Key state is by fingerprint and
-- outlives a key's absence. Reading the state hashes of joining keys also
-- carries over the state kept by the keyring before issue 11.
--
-- KEYS[1] -> ...:members, KEYS[2] -> ...:ring, KEYS[3] -> ...:wait,
-- KEYS[4] -> ...:why, KEYS[5] -> ...:parked, KEYS[6] -> ...:projkeys,
-- KEYS[7] -> ...:order, KEYS[8] -> ...:disabled, KEYS[9] -> ...:projuntil,
-- KEYS[10] -> ...:replicas, KEYS[11] -> ...:seen, KEYS[12] -> ...:rr,
-- KEYS[13] -> ...:probe, KEYS[14] -> ...:proben, KEYS[15] -> ...:picks,
-- KEYS[16] -> ...:keyuntil, KEYS[17] -> ...:rpd:<today>
--            (see redis_keys.go)
-- KEYS[18] -> keyq:{pool}:set:<digest>, this replica's set
-- then nd keys: the sets of the other digests the caller read from replicas
-- then n keys: keyq:{pool}:key:<fingerprint>, each key's state hash
-- then m keys: keyq:{pool}:proj:<project>, each project's state hash
-- then m keys: keyq:{pool}:proj:<project>:rpd:<today>, the old day counts
-- ARGV[1] -> replica id; ARGV[2] -> its digest; ARGV[3] -> how long a
--            replica not seen counts as alive, ms
-- ARGV[4] -> n keys; ARGV[5] -> nd digests; ARGV[6] -> m projects
-- then n times: fingerprint, "index|project", the project's number 1..m
-- then the nd digests, in the order of their sets in KEYS
--
-- Returns {added, removed}, or {-1} when a live replica's set was not
-- passed (one announced meanwhile): read again and retry.
local id, digest, live = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n, nd, m = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = nowMs()
local keyBase, projBase = 18 + nd, 18 + nd + n
local rpdBase = projBase + m

redis.call("HSET", KEYS[10], id, digest)
redis.call("ZADD", KEYS[11], now, id)
for _, dead in ipairs(redis.call("ZRANGEBYSCORE", KEYS[11], "-inf", now - live)) do
  redis.call("ZREM", KEYS[11], dead)
  redis.call("HDEL", KEYS[10], dead)
end

local setOf = {[digest] = KEYS[18]}
for i = 1, nd do
  setOf[ARGV[6 + 3 * n + i]] = KEYS[18 + i]
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

redis.call("DEL", KEYS[18])
local batch = {}
for i = 1, n do
  batch[#batch + 1] = ARGV[4 + 3 * i]
  if #batch == 1000 or i == n then
    redis.call("SADD", KEYS[18], unpack(batch))
    batch = {}
  end
end
redis.call("PEXPIRE", KEYS[18], 604800000)

local base = tonumber(redis.call("GET", KEYS[12]) or "0") - n - 1
local added, removed = 0, 0
local rpdDone = {}
for i = 1, n do
  local fp, v, pj = ARGV[4 + 3 * i], ARGV[5 + 3 * i], tonumber(ARGV[6 + 3 * i])
  local project = string.match(v, "^[^|]*|(.*)$")
  redis.call("HSET", KEYS[1], fp, v)
  redis.call("ZADD", KEYS[7], tonumber(string.match(v, "^(%d+)|")), fp)
  if not rpdDone[pj] then
    -- The day's calls counted by the old layout, once per project.
    rpdDone[pj] = true
    local old = redis.call("GET", KEYS[rpdBase + pj])
    if old and redis.call("HSETNX", KEYS[17], project, old) == 1 then
      redis.call("PEXPIRE", KEYS[17], math.max(redis.call("PTTL", KEYS[rpdBase + pj]), 1000))
    end
  end
  if not (redis.call("ZSCORE", KEYS[2], fp) or redis.call("ZSCORE", KEYS[3], fp) or redis.call("ZSCORE", KEYS[8], fp)) then
    added = added + 1
    local h = KEYS[keyBase + i]
    local st = redis.call("HMGET", h, "disabled", "disabled_at", "until", "probe_at", "probe_n", "picks")
    if st[6] then
      redis.call("HSETNX", KEYS[15], fp, st[6])
      redis.call("HDEL", h, "picks")
    end
    local s = redis.call("HGET", KEYS[5], fp) or (base + i)
    local ku = tonumber(st[3] or "0")
    local pu = tonumber(redis.call("HGET", KEYS[9], project) or redis.call("HGET", KEYS[projBase + pj], "until") or "0")
    if st[1] then
      redis.call("HSET", KEYS[5], fp, s)
      redis.call("ZADD", KEYS[8], tonumber(st[2] or now), fp)
      if st[4] then
        redis.call("ZADD", KEYS[13], tonumber(st[4]), fp)
        redis.call("HSET", KEYS[14], fp, st[5] or "0")
        redis.call("HDEL", h, "probe_at", "probe_n")
      end
    elseif ku > now or pu > now then
      redis.call("HSET", KEYS[5], fp, s)
      redis.call("ZADD", KEYS[3], math.max(ku, pu), fp)
      redis.call("HSET", KEYS[4], fp, ku >= pu and "key" or "project")
      if ku > now then
        redis.call("HSET", KEYS[16], fp, ku)
      end
      if pu > now then
        redis.call("HSET", KEYS[9], project, pu)
      end
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
