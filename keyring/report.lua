-- report.lua records what one call with a key came to, and moves the key or
-- its project into the state that follows.
--
-- KEYS[1] -> keyq:{pool}:key:<fingerprint>, the key's state hash
-- KEYS[2] -> keyq:{pool}:proj:<project>, its project's state hash
-- KEYS[3] -> keyq:{pool}:pause, the pool pause
-- KEYS[4] -> keyq:{pool}:storm, projects that answered 429 lately (zset)
-- KEYS[5] -> keyq:{pool}:ring, KEYS[6] -> ...:wait, KEYS[7] -> ...:why,
-- KEYS[8] -> ...:parked, KEYS[9] -> ...:projkeys, KEYS[10] -> ...:projuntil,
-- KEYS[11] -> ...:disabled, KEYS[12] -> ...:probe, KEYS[13] -> ...:proben
--            (see redis_keys.go)
-- KEYS[14] -> ...:rpmlog, the per-minute logs (see pick.lua)
-- KEYS[15] -> ...:keyuntil, hash fp -> ms the key's own cooldown ends
-- KEYS[16] -> ...:callsmin, hash "<minute>|<project>" -> calls reported in
--             that minute (ms / 60000), the last hour's per project
-- KEYS[17 ..] -> the state hashes of the project's other keys
-- ARGV[1] -> outcome: success | no_fault | cool_key | cool_project | suspect |
--            disable | disable_project
-- ARGV[2] -> class, the failure counter to count ("" for success)
-- ARGV[3] -> cooldown ms (cool_*, suspect); for cool_project with
--            ARGV[4] = "grow", the base that doubles on repeats
-- ARGV[4] -> "for" (ARGV[3] from now), "at" (ARGV[3] is the end, ms since
--            the epoch) or "grow"
-- ARGV[5] -> reason, for operators
-- ARGV[6] -> project name
-- ARGV[7] -> first probe of a disabled key after this many ms (0: never)
-- ARGV[8] -> jitter, 0..1000 per mille added to grown cooldowns
-- ARGV[9] -> pause of the whole pool on a 429 storm, ms
-- ARGV[10] -> the key's fingerprint
-- ARGV[11] -> the call's lease in rpmlog, from pick.lua ("" for none)
-- ARGV[12] -> the per-minute window ms (a minute plus the margin)
-- ARGV[13] -> the margin ms
-- ARGV[14 ..] -> the fingerprints of KEYS[17 ..], in order
--
-- The lease: pick.lua counts a call at the pick, and the window has a
-- margin because the upstream counts it when it arrives, a little later.
-- But the call arrived before its answer did: a report within the margin
-- moves the call's entry so that its slot frees a minute after the report
-- rather than a minute plus the margin after the pick, and brings the
-- project's keys waiting on that budget back as early.
--
-- Returns {state, until_ms, reason} of what changed: state is "cooling",
-- "disabled" or "paused"; {"", 0, ""} when nothing did.
local outcome, class, amount, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local reason, project = ARGV[5], ARGV[6]
local probe, jitter, pauseMs, fp = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local now = nowMs()
local ring, wait, why, parked = KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local lease, window, margin = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])
if lease ~= "" then
  local p, at, c = string.match(lease, "^(.*)|(%d+)|(%d+)$")
  if p and now - margin < tonumber(at) and redis.call("ZREM", KEYS[14], lease) == 1 then
    redis.call("ZADD", KEYS[14], 0, p .. "|" .. string.format("%015d", now - margin) .. "|" .. c)
    redis.call("ZREMRANGEBYLEX", KEYS[14], "[" .. p .. "|", "(" .. p .. "|" .. string.format("%015d", now - window + 1))
    local first = redis.call("ZRANGEBYLEX", KEYS[14], "[" .. p .. "|", "(" .. p .. "}", "LIMIT", 0, 1)
    local back = tonumber(string.match(first[1], "^[^|]*|(%d+)|")) + window
    local pu = tonumber(redis.call("HGET", KEYS[10], p) or "0")
    for _, k in ipairs(projectKeys(KEYS[9], p)) do
      local w = redis.call("ZSCORE", wait, k)
      if w and tonumber(w) > back and redis.call("HGET", why, k) == "rpm" then
        local ku = tonumber(redis.call("HGET", KEYS[15], k) or "0")
        redis.call("ZADD", wait, math.max(back, pu, ku), k)
      end
    end
  end
end

-- For operators: when the key was last used, its last failure, and the
-- project's calls a minute (each project keeps its last 61 minutes).
local minute = math.floor(now / 60000)
redis.call("HINCRBY", KEYS[16], minute .. "|" .. project, 1)
redis.call("HDEL", KEYS[16], (minute - 61) .. "|" .. project)
redis.call("HSET", KEYS[1], "last_at", now)
if outcome ~= "success" then
  redis.call("HSET", KEYS[1], "last_fail", class, "last_fail_at", now)
end

if outcome == "success" then
  redis.call("HINCRBY", KEYS[1], "successes", 1)
  redis.call("HDEL", KEYS[1], "strikes")
  redis.call("HDEL", KEYS[2], "streak")
  return {"", 0, ""}
end
redis.call("HINCRBY", KEYS[1], "fail:" .. class, 1)

local function cool(h, untilMs)
  local old = tonumber(redis.call("HGET", h, "until") or "0")
  if untilMs <= old then
    return {"", 0, ""}
  end
  redis.call("HSET", h, "until", untilMs, "reason", reason)
  return {"cooling", untilMs, reason}
end

local function coolKey(untilMs)
  local res = cool(KEYS[1], untilMs)
  if res[1] ~= "" then
    redis.call("HSET", KEYS[15], fp, untilMs)
  end
  rest(ring, wait, why, parked, fp, untilMs, "key")
  return res
end

-- disable takes a key out of rotation; with probes, the i-th key of one
-- report is probed up to 10% later than the first, so that a project's
-- keys disabled together are not probed together.
local function disable(h, key, i)
  redis.call("HSET", h, "disabled", reason, "disabled_at", now)
  redis.call("HDEL", h, "probe_at", "probe_n")
  pull(ring, wait, why, parked, key)
  redis.call("ZADD", KEYS[11], now, key)
  redis.call("HDEL", KEYS[13], key)
  if probe > 0 then
    local at = now + probe + math.floor(probe * ((i * 397) % 100) / 1000)
    redis.call("ZADD", KEYS[12], at, key)
    return at
  end
  redis.call("ZREM", KEYS[12], key)
  return 0
end

if outcome == "cool_key" then
  return coolKey(now + amount)
elseif outcome == "suspect" then
  -- An invalid-key answer once may be Google's hiccup; twice is the key.
  if redis.call("HINCRBY", KEYS[1], "strikes", 1) < 2 then
    return coolKey(now + amount)
  end
  return {"disabled", disable(KEYS[1], fp, 0), reason}
elseif outcome == "disable" then
  return {"disabled", disable(KEYS[1], fp, 0), reason}
elseif outcome == "disable_project" then
  local at = disable(KEYS[1], fp, 0)
  for i = 17, #KEYS do
    disable(KEYS[i], ARGV[i - 3], i - 16)
  end
  return {"disabled", at, reason}
elseif outcome == "cool_project" then
  local untilMs
  if mode == "at" then
    untilMs = amount
  elseif mode == "grow" then
    -- 429s without details: each repeat within 10 minutes doubles the
    -- wait, up to 16 times the base.
    local last = tonumber(redis.call("HGET", KEYS[2], "last429") or "0")
    local streak = 1
    if now - last < 600000 then
      streak = tonumber(redis.call("HGET", KEYS[2], "streak") or "0") + 1
    end
    redis.call("HSET", KEYS[2], "streak", streak)
    untilMs = now + math.floor(amount * math.pow(2, math.min(streak, 5) - 1) * (1000 + jitter) / 1000)
  else
    untilMs = now + amount
  end
  redis.call("HSET", KEYS[2], "last429", now)
  local res = cool(KEYS[2], untilMs)
  if res[1] ~= "" then
    redis.call("HSET", KEYS[10], project, untilMs)
  end
  for _, k in ipairs(projectKeys(KEYS[9], project)) do
    rest(ring, wait, why, parked, k, untilMs, "project")
  end
  -- Most projects throttled within seconds: it is the account or the
  -- egress IP, not the keys. Pause the pool instead of walking every key.
  local projects = redis.call("HLEN", KEYS[9])
  redis.call("ZADD", KEYS[4], now, project)
  redis.call("ZREMRANGEBYSCORE", KEYS[4], "-inf", now - 10000)
  redis.call("PEXPIRE", KEYS[4], 10000)
  local hit = redis.call("ZCARD", KEYS[4])
  if projects >= 2 and hit * 2 > projects and redis.call("EXISTS", KEYS[3]) == 0 then
    local msg = "429 from " .. hit .. " of " .. projects .. " projects within 10s"
    redis.call("SET", KEYS[3], msg, "PX", pauseMs)
    return {"paused", now + pauseMs, msg}
  end
  return res
end
return {"", 0, ""}
