-- pick.lua takes the next usable key of the fleet-wide rotation, and its
-- share of the project's budgets, in one round trip. Its work is O(log n)
-- in the pool's size n and its request does not grow with n.
--
-- KEYS[1] -> keyq:{pool}:rr, the pick counter
-- KEYS[2] -> keyq:{pool}:pause, set while the whole pool is paused
-- KEYS[3] -> keyq:{pool}:ring, zset fp -> number of its last pick (usable keys)
-- KEYS[4] -> keyq:{pool}:wait, zset fp -> ms when it may be usable again
-- KEYS[5] -> keyq:{pool}:why, hash fp -> why it waits (key|project|rpm|rpd)
-- KEYS[6] -> keyq:{pool}:parked, hash fp -> its ring score while out of it
-- KEYS[7] -> keyq:{pool}:members, hash fp -> "index|project"
-- KEYS[8] -> keyq:{pool}:projkeys, hash project -> "fp fp ..."
-- KEYS[9] -> keyq:{pool}:rpmlog, zset "project|ms|n" (scores 0), per-minute logs
-- KEYS[10] -> keyq:{pool}:rpd:<Pacific date>, hash project -> calls today
-- KEYS[11] -> keyq:{pool}:set:<digest>, the fingerprints this replica holds
-- KEYS[12] -> keyq:{pool}:seen, zset replica id -> ms last seen
-- KEYS[13] -> keyq:{pool}:picks, hash fp -> picks
-- KEYS[14] -> keyq:{pool}:probe, zset fp -> ms its next probe is due
-- ARGV[1] -> calls per minute per project (0 = no limit)
-- ARGV[2] -> calls per day per project (0 = no limit)
-- ARGV[3] -> next midnight America/Los_Angeles, ms since the epoch
-- ARGV[4] -> the per-minute window in ms (a minute plus the margin)
-- ARGV[5] -> this replica's id when it should mark itself alive, else ""
-- ARGV[6 ..] -> fingerprints to skip (keys this job run already tried)
--
-- The ring holds the usable keys scored by the number of their last pick;
-- a pick takes the least recently picked key this replica holds and is not
-- skipping, and scores it with the new pick number: one rotation for the
-- whole fleet, whatever order replicas list their keys in. Skipped keys
-- are taken only when no other is usable. Keys cooling, over budget or
-- disabled are not in the ring: a cooldown or a full budget moves a key (or
-- a project's keys) to wait, scored by when it ends; each pick first moves
-- back the keys whose wait is over. A budget is checked on the picked key's
-- project (a lexical range of rpmlog, O(log n)), and a project that reaches
-- it waits until its oldest call leaves the window (RPM) or midnight (RPD).
-- Time is Redis's, so that every replica agrees.
--
-- Returns {fp, 0, lease} or, when no key is usable, {"", wait_ms, reason}:
-- lease is the call's entry in rpmlog ("" without RPM), for report.lua to
-- release it early;
-- wait_ms is when the first one may be, -1 when none ever will, -2 when
-- this replica must announce its keys first (unknown to Redis).
local rpm, rpd, midnight, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local replica = ARGV[5]
local now = nowMs()

local paused = redis.call("PTTL", KEYS[2])
if paused > 0 then
  return {"", paused, "pool paused: " .. (redis.call("GET", KEYS[2]) or "")}
end
if replica ~= "" then
  -- Alive: a replica that was forgotten (or a Redis that lost its data)
  -- announces its keys again before it picks.
  if redis.call("ZADD", KEYS[12], now, replica) == 1 then
    return {"", -2, "announce"}
  end
  redis.call("PEXPIRE", KEYS[11], 604800000)
end

local skip, nskip = {}, 0
for i = 6, #ARGV do
  skip[ARGV[i]] = true
  nskip = nskip + 1
end

-- promote moves back into the ring up to 100 keys whose wait is over.
local function promote()
  local due = redis.call("ZRANGEBYSCORE", KEYS[4], "-inf", now, "LIMIT", 0, 100)
  for _, fp in ipairs(due) do
    if redis.call("HEXISTS", KEYS[7], fp) == 1 then
      unrest(KEYS[3], KEYS[4], KEYS[5], KEYS[6], fp)
    else
      redis.call("ZREM", KEYS[4], fp) -- left the pool meanwhile
      redis.call("HDEL", KEYS[5], fp)
    end
  end
  return #due
end

-- choose returns the least recently picked key this replica holds and does
-- not skip; failing that, the least recently picked one it skips.
local function choose()
  local fallback
  local off, size, more = 0, nskip + 2, true
  while more and off < 256 do
    local batch = redis.call("ZRANGE", KEYS[3], off, off + size - 1)
    for _, fp in ipairs(batch) do
      if redis.call("SISMEMBER", KEYS[11], fp) == 1 then
        if not skip[fp] then
          return fp
        end
        fallback = fallback or fp
      end
    end
    off, more = off + size, #batch == size
    size = 32
  end
  if more then
    -- This replica lacks the 256 least recently picked keys (its list
    -- differs from the fleet's): look among the keys it holds instead.
    local best, bestScore, fb, fbScore
    for _, fp in ipairs(redis.call("SMEMBERS", KEYS[11])) do
      local s = redis.call("ZSCORE", KEYS[3], fp)
      if s then
        s = tonumber(s)
        if not skip[fp] then
          if not bestScore or s < bestScore then best, bestScore = fp, s end
        elseif not fbScore or s < fbScore then
          fb, fbScore = fp, s
        end
      end
    end
    return best or fb
  end
  return fallback
end

local function projectOf(fp)
  local v = redis.call("HGET", KEYS[7], fp)
  if not v then return nil end
  return string.match(v, "^[^|]*|(.*)$")
end

local function restProject(p, untilMs, code)
  for _, fp in ipairs(projectKeys(KEYS[8], p)) do
    rest(KEYS[3], KEYS[4], KEYS[5], KEYS[6], fp, untilMs, code)
  end
end

-- The project's per-minute log is the lexical range [p| , p} of rpmlog
-- ('|' < '}' and no project name holds either).
local lo, hi
local function oldest(p)
  local first = redis.call("ZRANGEBYLEX", KEYS[9], "[" .. p .. "|", "(" .. p .. "}", "LIMIT", 0, 1)
  return tonumber(string.match(first[1], "^[^|]*|(%d+)|"))
end

promote()
for _ = 1, 32 do
  local fp = choose()
  if not fp then
    if promote() == 0 then break end
  else
    local p, ok = nil, true
    local usedDay, usedMin = 0, 0
    if rpm > 0 or rpd > 0 then
      p = projectOf(fp)
      if not p then
        redis.call("ZREM", KEYS[3], fp) -- not a member any more
        ok = false
      end
    end
    if ok and rpd > 0 then
      usedDay = tonumber(redis.call("HGET", KEYS[10], p) or "0")
      if usedDay >= rpd then
        restProject(p, midnight, "rpd")
        ok = false
      end
    end
    if ok and rpm > 0 then
      lo, hi = "[" .. p .. "|", "(" .. p .. "}"
      usedMin = redis.call("ZLEXCOUNT", KEYS[9], lo, hi)
      if usedMin >= rpm - 1 then
        -- Near the budget: drop the calls that left the window, count again.
        redis.call("ZREMRANGEBYLEX", KEYS[9], lo, "(" .. p .. "|" .. string.format("%015d", now - window + 1))
        usedMin = redis.call("ZLEXCOUNT", KEYS[9], lo, hi)
      end
      if usedMin >= rpm then
        restProject(p, oldest(p) + window, "rpm")
        ok = false
      end
    end
    if ok then
      local c = redis.call("INCR", KEYS[1])
      redis.call("ZADD", KEYS[3], c, fp)
      redis.call("HINCRBY", KEYS[13], fp, 1)
      local lease = ""
      if rpm > 0 then
        lease = p .. "|" .. string.format("%015d", now) .. "|" .. c
        redis.call("ZADD", KEYS[9], 0, lease)
        redis.call("PEXPIRE", KEYS[9], window + 60000)
        if usedMin + 1 >= rpm then
          restProject(p, oldest(p) + window, "rpm")
        end
      end
      if rpd > 0 then
        if redis.call("HINCRBY", KEYS[10], p, 1) == 1 then
          redis.call("PEXPIREAT", KEYS[10], midnight + 3600000)
        end
        if usedDay + 1 >= rpd then
          restProject(p, midnight, "rpd")
        end
      end
      return {fp, 0, lease}
    end
  end
end

if redis.call("SCARD", KEYS[11]) == 0 then
  return {"", -2, "announce"} -- Redis lost this replica's set
end
local first = redis.call("ZRANGE", KEYS[4], 0, 0, "WITHSCORES")
if first[1] then
  local reasons = {
    key = "keys cooling down",
    project = "projects cooling down",
    rpm = "projects at their per-minute budget (GEMINI_RPM)",
    rpd = "projects at their daily budget (GEMINI_RPD)",
  }
  local code = redis.call("HGET", KEYS[5], first[1]) or "key"
  return {"", math.max(tonumber(first[2]) - now, 1), reasons[code] or "keys cooling down"}
end
local probe = redis.call("ZRANGE", KEYS[14], 0, 0, "WITHSCORES")
if probe[1] then
  return {"", math.max(tonumber(probe[2]) - now, 1), "every usable key is disabled until its next probe"}
end
return {"", -1, "every key is disabled"}
