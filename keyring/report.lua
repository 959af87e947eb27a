-- report.lua records what one call with a key came to, and moves the key or
-- its project into the state that follows.
--
-- KEYS[1] -> keyq:{pool}:key:<fingerprint>, the key's state hash
-- KEYS[2] -> keyq:{pool}:proj:<project>, its project's state hash
-- KEYS[3] -> keyq:{pool}:pause, the pool pause
-- KEYS[4] -> keyq:{pool}:storm, projects that answered 429 lately (zset)
-- KEYS[5 ..] -> the state hashes of the project's other keys
-- ARGV[1] -> outcome: success | fault | cool_key | cool_project | suspect |
--            disable | disable_project
-- ARGV[2] -> class, the failure counter to count ("" for success)
-- ARGV[3] -> cooldown ms (cool_*, suspect); for cool_project with
--            ARGV[4] = "grow", the base that doubles on repeats
-- ARGV[4] -> "for" (ARGV[3] from now), "at" (ARGV[3] is the end, ms since
--            the epoch) or "grow"
-- ARGV[5] -> reason, for operators
-- ARGV[6] -> project name; ARGV[7] -> number of projects in the pool
-- ARGV[8] -> first probe of a disabled key after this many ms (0: never)
-- ARGV[9] -> jitter, 0..1000 per mille added to grown cooldowns
-- ARGV[10] -> pause of the whole pool on a 429 storm, ms
--
-- Returns {state, until_ms, reason} of what changed: state is "cooling",
-- "disabled" or "paused"; {"", 0, ""} when nothing did.
local outcome, class, amount, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local reason, project, projects = ARGV[5], ARGV[6], tonumber(ARGV[7])
local probe, jitter, pauseMs = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

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

local function disable(h)
  redis.call("HSET", h, "disabled", reason, "disabled_at", now, "probe_n", 0)
  if probe > 0 then
    redis.call("HSET", h, "probe_at", now + probe)
  else
    redis.call("HDEL", h, "probe_at")
  end
end

if outcome == "cool_key" then
  return cool(KEYS[1], now + amount)
elseif outcome == "suspect" then
  -- An invalid-key answer once may be Google's hiccup; twice is the key.
  if redis.call("HINCRBY", KEYS[1], "strikes", 1) < 2 then
    return cool(KEYS[1], now + amount)
  end
  disable(KEYS[1])
  return {"disabled", now + probe, reason}
elseif outcome == "disable" then
  disable(KEYS[1])
  return {"disabled", probe > 0 and now + probe or 0, reason}
elseif outcome == "disable_project" then
  for i = 1, #KEYS do
    if i == 1 or i >= 5 then
      disable(KEYS[i])
    end
  end
  return {"disabled", probe > 0 and now + probe or 0, reason}
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
  -- Most projects throttled within seconds: it is the account or the
  -- egress IP, not the keys. Pause the pool instead of walking every key.
  redis.call("ZADD", KEYS[4], now, project)
  redis.call("ZREMRANGEBYSCORE", KEYS[4], "-inf", now - 10000)
  redis.call("PEXPIRE", KEYS[4], 10000)
  local hit = redis.call("ZCARD", KEYS[4])
  if projects >= 2 and hit * 2 > projects and redis.call("EXISTS", KEYS[3]) == 0 then
    local why = "429 from " .. hit .. " of " .. projects .. " projects within 10s"
    redis.call("SET", KEYS[3], why, "PX", pauseMs)
    return {"paused", now + pauseMs, why}
  end
  return res
end
return {"", 0, ""}
