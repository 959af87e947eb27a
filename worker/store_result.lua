-- store_result.lua writes a job's result into asynq's task hash, but only
-- while the task is still there: asynq's own ResultWriter would HSET into
-- a task that is gone (deleted, expired, Redis flushed) and leave an
-- orphan hash holding only "result" (hibiken/asynq #1167).
--
-- KEYS[1] -> asynq:{<queue>}:t:<task id>, the task's hash
-- ARGV[1] -> the result bytes
--
-- Returns 1 when written, 0 when the task is gone.
if redis.call("HEXISTS", KEYS[1], "msg") == 0 then
  return 0
end
redis.call("HSET", KEYS[1], "result", ARGV[1])
return 1
