package worker

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/usage"
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

// paidCall is the bookkeeping of the call that answered a job: the key's
// success report and the answer's usage (nil without a usage store). It
// goes to Redis with the job's result, in the same round trip.
type paidCall struct {
	ring    *keyring.Ring
	key     keyring.Key
	outcome keyring.Outcome
	usage   *usage.Entry
}

// storeResult writes the result, retrying while Redis is briefly away and
// the job has time: the answer is paid for, and a failed write would have
// asynq run the job, and bill the call, again. A job that is gone from
// Redis gets no result (an orphan hash would answer polls forever).
// paid, and the job's succeeded state, go with the first try only: a retry
// must not count the call twice (the middleware publishes the state when
// the first try did not).
func (h *Handler) storeResult(ctx context.Context, log *slog.Logger, id string, w *asynq.ResultWriter, b []byte, paid *paidCall) error {
	wait := 100 * time.Millisecond
	sink := sinkOf(ctx)
	for {
		err := h.writeResult(ctx, log, id, w, b, paid, sink)
		paid, sink = nil, nil
		switch {
		case err == nil:
			if s := sinkOf(ctx); s != nil {
				s.result = b
			}
			return nil
		case errors.Is(err, errTaskGone):
			log.Warn(err.Error())
			return nil
		}
		log.Warn("could not store the result; trying again", "err", err, "in", wait)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("store result: %w", err)
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// writeResult sends the result, paid's bookkeeping and the job's succeeded
// state (sink) in one pipeline.
func (h *Handler) writeResult(ctx context.Context, log *slog.Logger, id string, w *asynq.ResultWriter, b []byte, paid *paidCall, sink *resultSink) error {
	if h.results.rdb == nil { // no Redis of keyq's own: asynq's writer
		if paid != nil {
			h.report(ctx, log, paid.ring, paid.key, paid.outcome)
			h.record(ctx, log, paid.usage)
		}
		_, err := w.Write(b)
		return err
	}
	pipe := h.results.rdb.Pipeline()
	var report *keyring.ReportCmd
	var used []redis.Cmder
	if paid != nil {
		report = paid.ring.QueueReport(ctx, pipe, paid.key, paid.outcome)
		if paid.usage != nil {
			used = h.usage.Queue(ctx, pipe, *paid.usage)
		}
	}
	stored := storeResultScript.EvalSha(ctx, pipe, []string{jobstore.TaskKey(id)}, b)
	if sink != nil {
		sink.queue(ctx, pipe, b)
	}
	_, _ = pipe.Exec(ctx) // each command's error is read below
	if report != nil {
		c, err := report.Result()
		h.reported(log, paid.ring, paid.key, paid.outcome, c, err)
	}
	for _, c := range used {
		if err := c.Err(); err != nil {
			log.Warn("could not record the answer's token usage", "err", err)
			break
		}
	}
	n, err := stored.Int64()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		n, err = storeResultScript.Run(ctx, h.results.rdb, []string{jobstore.TaskKey(id)}, b).Int64()
	}
	switch {
	case err != nil:
		return fmt.Errorf("store result: %w", err)
	case n == 0:
		return errTaskGone
	}
	return nil
}
