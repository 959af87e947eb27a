-- orphan.lua deletes a task hash that asynq cannot read: one that holds no
-- "msg" (the task itself), as a result written for a task that was gone
-- leaves behind (hibiken/asynq #1167).
--
-- KEYS[1] -> asynq:{<queue>}:t:<task id>
--
-- Returns 1 if KEYS[1] was such an orphan and is deleted, else 0.
if redis.call("EXISTS", KEYS[1]) == 1 and redis.call("HEXISTS", KEYS[1], "msg") == 0 then
  redis.call("DEL", KEYS[1])
  return 1
end
return 0
