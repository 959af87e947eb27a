package worker

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/tasks"
)

// lifecycle wraps every run of a job: it refuses cancelled jobs (cancel.go),
// publishes each change of state (running, retrying, final) for the API's
// waiters, and at a final state enqueues the job's webhook, and its
// batch's when it was the batch's last job (notify.go).
type lifecycle struct {
	store  *jobstore.Store
	client *asynq.Client // enqueues webhook deliveries
	log    *slog.Logger
}

// afterRunTimeout bounds the Redis work after a run, which must happen
// even when the run's context was cancelled.
const afterRunTimeout = 5 * time.Second

func (l *lifecycle) middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if _, ok := tasks.KindOf(t.Type()); !ok { // not a job (nothing else is on this mux today)
			return next.ProcessTask(ctx, t)
		}
		id, _ := asynq.GetTaskID(ctx)
		run := lifeRunOf(ctx, t, id)
		marked, prev, err := l.store.Start(ctx, run.job(tasks.StatusRunning, nil), run.ttl)
		if err != nil {
			// A lost cancel is better than a lost job: the run goes ahead.
			l.log.Warn("could not start the job's run in Redis (cancel mark, running state); running it", "job", id, "err", err)
		}
		switch {
		case len(prev) > 0:
			// An earlier run stored the result, but asynq did not record
			// the job as done (Redis away as it finished, or a cancel that
			// cut its context as it ended): the success stands, and
			// Gemini is not called, nor billed, again.
			l.log.Info("an earlier run of this job stored its result; finishing with it without calling Gemini again", "job", id)
			l.after(ctx, run, nil, prev)
			return nil
		case marked:
			l.after(ctx, run, errCancelledBefore, nil)
			return errCancelledBefore
		}
		sink := &resultSink{store: l.store, run: run}
		err = next.ProcessTask(context.WithValue(ctx, resultSinkKey{}, sink), t)
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterRunTimeout)
		defer cancel()
		if err == nil && sink.published {
			l.ended(actx, run, sink.job, sink.batchComplete)
			return nil
		}
		err = cancelledRun(actx, l.store, l.log, id, err)
		l.after(actx, run, err, sink.result)
		return err
	})
}

// resultSink is how a run and the middleware around it share the end of a
// successful run: the run stores its result and publishes the job's
// succeeded state in one script (finish.lua, on the same pipeline as the
// key's report and the usage), and the middleware takes what was stored
// and published rather than asking Redis again.
type resultSink struct {
	store *jobstore.Store
	run   lifeRun

	job           tasks.Job // the succeeded state queued with the result
	queued        []byte    // the result queued with it
	result        []byte    // the result, once stored
	published     bool      // the succeeded state is recorded and published
	batchComplete bool      // and it completed the job's batch
}

// queue adds the result, and the job's succeeded state, to pipe.
func (s *resultSink) queue(ctx context.Context, pipe redis.Pipeliner, result []byte) *jobstore.FinishCmd {
	s.job, s.queued = s.run.succeeded(result), result
	return s.store.QueueFinish(ctx, pipe, s.job, s.run.batch, s.run.ttl, result)
}

// finished takes the finish's reply.
func (s *resultSink) finished(_ int64, batchComplete bool, err error) error {
	if err == nil {
		s.result, s.published, s.batchComplete = s.queued, true, batchComplete
	}
	return err
}

type resultSinkKey struct{}

// sinkOf is the sink of the run of ctx; nil outside the middleware.
func sinkOf(ctx context.Context) *resultSink {
	s, _ := ctx.Value(resultSinkKey{}).(*resultSink)
	return s
}

// lifeRun is what the middleware knows of one run of a job.
type lifeRun struct {
	id, callback, batch string
	typ                 string
	retried, maxRetry   int
	ttl                 time.Duration
}

func lifeRunOf(ctx context.Context, t *asynq.Task, id string) lifeRun {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	h := t.Headers()
	secs, _ := strconv.Atoi(h[tasks.HeaderRetention])
	return lifeRun{id: id, typ: t.Type(), callback: h[tasks.HeaderCallbackURL], batch: h[tasks.HeaderBatch],
		retried: retried, maxRetry: maxRetry, ttl: jobstore.TTL(time.Duration(secs) * time.Second)}
}

// job is the job as GET /api/jobs/{id} will show it in status s.
func (r lifeRun) job(s tasks.Status, err error) tasks.Job {
	j := tasks.Job{ID: r.id, Type: r.typ, Status: s, Attempts: r.retried + 1, MaxAttempts: tasks.MaxRuns(r.maxRetry)}
	if err != nil {
		e := tasks.ParseJobError(err.Error())
		j.Error = &tasks.JobStatusError{Class: e.Class, Message: e.Message}
	}
	return j
}

// statusAfter is the job's status once a run returned err, as asynq will
// record it (Worker's IsFailure and asynq's archiving rule).
func (r lifeRun) statusAfter(err error) (s tasks.Status, spent bool) {
	var je *tasks.JobError
	switch {
	case err == nil:
		return tasks.StatusSucceeded, true
	case errors.As(err, &je) && je.Class == tasks.ClassCancelled && je.Final:
		return tasks.StatusCancelled, true
	case errors.Is(err, asynq.SkipRetry) || tasks.AsynqArchives(r.retried, r.maxRetry):
		return tasks.StatusFailed, true
	}
	return tasks.StatusRetrying, isFailure(err)
}
