package worker

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
)

// results writes a job's result in asynq's own task hash, only while the
// task exists. A run first looks for a result an earlier run stored (the
// lifecycle middleware, with the cancel mark, in one round trip): asynq
// runs a job at least once, and a worker that stored the result and then
// lost Redis before asynq marked the task done (its mark-as-done uses a
// context it has already cancelled) leaves the task active; the recoverer
// runs it again after the lease. Gemini was paid for the first answer.
type results struct {
	rdb redis.UniversalClient
}

var (
	//go:embed store_result.lua
	storeResultSource string
	storeResultScript = redis.NewScript(storeResultSource)
)

// errTaskGone is returned by store when the task no longer exists.
var errTaskGone = errors.New("the job is gone from Redis (deleted, expired, or Redis lost its data); its result is not stored")

// store writes the result if the task still exists.
func (r results) store(ctx context.Context, id string, b []byte) error {
	n, err := storeResultScript.Run(ctx, r.rdb, []string{jobstore.TaskKey(id)}, b).Int64()
	switch {
	case err != nil:
		return fmt.Errorf("store result: %w", err)
	case n == 0:
		return errTaskGone
	}
	return nil
}
