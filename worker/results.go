package worker

import (
	"context"
	_ "embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
)

// results reads and writes a job's result in asynq's own task hash, so
// that a run can see what an earlier run of the same job stored.
//
// asynq runs a job at least once: a worker that stored the result and then
// lost Redis before asynq marked the task done (its mark-as-done uses a
// context it has already cancelled) leaves the task active; the recoverer
// runs it again after the lease. Gemini was paid for the first answer, so
// a run first looks for a stored result and finishes with it.
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

// stored returns the result an earlier run stored, or nil.
func (r results) stored(ctx context.Context, id string) ([]byte, error) {
	b, err := r.rdb.HGet(ctx, jobstore.TaskKey(id), "result").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

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
