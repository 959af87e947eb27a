-- start.lua begins a job's run, in one round trip: a job marked cancelled,
-- or whose earlier run stored its result, is not started; any other is
-- recorded and published as running (publish.lua, which follows this
-- guard in the same script).
--
-- KEYS[1..3], ARGV[1..6] -> as publish.lua (ARGV[4] is "": not final)
-- KEYS[4] -> asynq:{<queue>}:t:<id>, asynq's task hash
--
-- Returns {"cancelled", 0}, {"result", 0, <the stored result>}, or
-- publish.lua's {seq, 0} when the run starts.
-- The stored result first: a success stands even when a cancel came as
-- it ended (asynq fails a run whose context was cancelled, whatever it
-- returned, and runs it again).
local stored = redis.call("HGET", KEYS[4], "result")
if stored and stored ~= "" then
  return {"result", 0, stored}
end
if redis.call("HEXISTS", KEYS[1], "cancelled_at") == 1 then
  return {"cancelled", 0}
end
