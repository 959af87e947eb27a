package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/usage"
)

// results writes a job's result in asynq's own task hash, only while the
// task exists (jobstore's finish.lua). A run first looks for a result an
// earlier run stored (the lifecycle middleware's start, with the cancel
// mark, in one round trip): asynq runs a job at least once, and a worker
// that stored the result and then lost Redis before asynq marked the task
// done (its mark-as-done uses a context it has already cancelled) leaves
// the task active; the recoverer runs it again after the lease. Gemini was
// paid for the first answer.
type results struct {
	rdb redis.UniversalClient
}

// errTaskGone is returned by a result's write when the task no longer
// exists.
var errTaskGone = jobstore.ErrTaskGone

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
// paid goes with the first try only, unless that try never reached Redis:
// a retry must not count the call twice. The job's succeeded state goes
// with every try (finish.lua publishes a final state once).
func (h *Handler) storeResult(ctx context.Context, log *slog.Logger, w *asynq.ResultWriter, b []byte, paid *paidCall) error {
	wait := 100 * time.Millisecond
	for {
		err := h.writeResult(ctx, log, w, b, paid, sinkOf(ctx))
		if !unsent(err) {
			paid = nil
		}
		switch {
		case err == nil:
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

// unsent reports whether a write's error shows that nothing reached Redis
// (no connection could be had), so that what it carried may go again.
func unsent(err error) bool {
	var op *net.OpError
	return errors.Is(err, redis.ErrPoolTimeout) || (errors.As(err, &op) && op.Op == "dial")
}

// writeResult sends, in one pipeline, the result with the job's succeeded
// state (sink: worker.New always runs the lifecycle middleware that makes
// it) and paid's bookkeeping.
func (h *Handler) writeResult(ctx context.Context, log *slog.Logger, w *asynq.ResultWriter, b []byte, paid *paidCall, sink *resultSink) error {
	if h.results.rdb == nil || sink == nil { // a Handler outside worker.New: asynq's writer
		h.settle(ctx, log, paid)
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
	finish := sink.queue(ctx, pipe, b)
	_, err := pipe.Exec(ctx) // each command's error is read below
	if unsent(err) {
		return err
	}
	if report != nil {
		c, err := report.Result(ctx)
		h.reported(log, paid.ring, paid.key, paid.outcome, c, err)
	}
	for _, c := range used {
		if err := c.Err(); err != nil {
			log.Warn("could not record the answer's token usage", "err", err)
			break
		}
	}
	return sink.finished(finish.Result(ctx))
}

// settle books a paid call alone, when its result is not written with it.
func (h *Handler) settle(ctx context.Context, log *slog.Logger, paid *paidCall) {
	if paid != nil {
		h.report(ctx, log, paid.ring, paid.key, paid.outcome)
		h.record(ctx, log, paid.usage)
	}
}
