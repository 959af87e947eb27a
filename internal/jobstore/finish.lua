-- finish.lua ends a successful run, in one script: it stores the result in
-- asynq's task hash, only while the task exists (asynq's own ResultWriter
-- would HSET into a task that is gone and leave an orphan hash holding only
-- "result", hibiken/asynq #1167), then records and publishes the job's
-- succeeded state (publish.lua, which follows this guard in the same
-- script). One script: no cancel lands between the two, and the state is
-- never published for a result that was not stored.
--
-- KEYS[1..3], ARGV[1..6] -> as publish.lua (ARGV[4] is "succeeded")
-- KEYS[4] -> asynq:{<queue>}:t:<id>, asynq's task hash
-- ARGV[7] -> the result bytes
--
-- Returns {"gone", 0} when the task is gone (nothing written), else
-- publish.lua's {seq, batch_complete}.
if redis.call("HEXISTS", KEYS[4], "msg") == 0 then
  return {"gone", 0}
end
redis.call("HSET", KEYS[4], "result", ARGV[7])
