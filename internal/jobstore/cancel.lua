-- cancel.lua marks a job cancelled unless it already ended, atomically
-- with asynq's own state changes (asynq moves tasks in scripts too).
--
-- KEYS[1] -> asynq:{q}:t:<id>, asynq's task hash
-- KEYS[2] -> keyq:{q}:job:<id>, keyq's hash of the job
-- ARGV[1] -> now, Unix milliseconds
-- ARGV[2] -> TTL of the job's hash in seconds
--
-- Returns {state, marked}: asynq's state of the task ("" when there is no
-- such task) and 1 if the job is (now or already) marked cancelled. A job
-- that ended (a completed or archived task, or a run that reported its
-- final state while asynq has yet to record it) and is not marked stays
-- as it is.
local state = redis.call("HGET", KEYS[1], "state")
if not state then
  return {"", 0}
end
if redis.call("HEXISTS", KEYS[2], "cancelled_at") == 1 then
  return {state, 1}
end
local final = redis.call("HGET", KEYS[2], "final")
if state == "completed" or state == "archived" or final then
  return {state, 0}
end
redis.call("HSET", KEYS[2], "cancelled_at", ARGV[1], "cancelled_while", state)
redis.call("EXPIRE", KEYS[2], tonumber(ARGV[2]))
return {state, 1}
