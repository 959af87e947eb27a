-- publish.lua records a job's new state and publishes it: one round trip,
-- so a waiter woken by the message reads the same sequence number.
--
-- KEYS[1] -> keyq:{q}:job:<id>, the job's hash
-- KEYS[2] -> keyq:{q}:batch:<batch id>, or any key when the job has no batch
-- KEYS[3] -> keyq:{q}:batch:<batch id>:done
-- ARGV[1] -> the events channel
-- ARGV[2] -> the job id
-- ARGV[3] -> the job's JSON
-- ARGV[4] -> the final status, or "" while the job may still run
-- ARGV[5] -> TTL of the job's hash in seconds
-- ARGV[6] -> "1" when the job belongs to a batch
--
-- Returns {seq, batch_complete}: the job's new sequence number, and 1 when
-- this final state is the last one its batch waited for.
--
-- A final state published again (a reply lost on the way back, a retried
-- write) is not published twice: it returns the recorded seq, and 1 again
-- if this job completed its batch, so that the caller's batch webhook is
-- still enqueued (its delivery id makes that once).
if ARGV[4] ~= "" and redis.call("HGET", KEYS[1], "final") == ARGV[4] then
  local again = 0
  if ARGV[6] == "1" and redis.call("HGET", KEYS[2], "completed_by") == ARGV[2] then
    again = 1
  end
  return {tonumber(redis.call("HGET", KEYS[1], "seq") or "0"), again}
end
local seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
local complete = 0
if ARGV[4] ~= "" then
  redis.call("HSET", KEYS[1], "final", ARGV[4])
  if ARGV[6] == "1" and redis.call("SADD", KEYS[3], ARGV[2]) == 1 then
    redis.call("EXPIRE", KEYS[3], tonumber(ARGV[5]))
    local total = tonumber(redis.call("HGET", KEYS[2], "total") or "0")
    if total > 0 and redis.call("SCARD", KEYS[3]) == total then
      redis.call("HSET", KEYS[2], "completed_by", ARGV[2])
      complete = 1
    end
  end
end
redis.call("EXPIRE", KEYS[1], tonumber(ARGV[5]))
redis.call("PUBLISH", ARGV[1], seq .. " " .. ARGV[2] .. " " .. ARGV[3])
return {seq, complete}
