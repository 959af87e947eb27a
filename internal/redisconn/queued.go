package redisconn

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Queued is a Lua script queued on a pipeline. It is sent as EVALSHA
// alone: a pipeline cannot fall back to EVAL when Redis does not know the
// script (restarted, flushed), so Result runs it again alone then. That is
// safe: a NOSCRIPT reply means it did not run.
type Queued struct {
	cmd    *redis.Cmd
	script *redis.Script
	rdb    redis.Scripter
	keys   []string
	args   []any
}

// Queue adds script to pipe; rdb is where Result runs it again if need be.
func Queue(ctx context.Context, pipe redis.Pipeliner, rdb redis.Scripter, script *redis.Script, keys []string, args ...any) *Queued {
	return &Queued{cmd: script.EvalSha(ctx, pipe, keys, args...), script: script, rdb: rdb, keys: keys, args: args}
}

// Result is the script's reply once the pipeline ran.
func (q *Queued) Result(ctx context.Context) (any, error) {
	res, err := q.cmd.Result()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		return q.script.Run(ctx, q.rdb, q.keys, q.args...).Result()
	}
	return res, err
}
