package worker

import (
	"context"
	"encoding/json"
	"time"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/tasks"
)

// publish records and publishes a state of the job; a failure is logged:
// waiters fall back to reading the job every few seconds.
func (l *lifecycle) publish(ctx context.Context, r lifeRun, j tasks.Job) (batchComplete bool) {
	_, complete, err := l.store.Publish(ctx, j, r.batch, r.ttl)
	if err != nil {
		l.log.Warn("could not publish the job's state", "job", r.id, "status", j.Status, "err", err)
	}
	return complete
}

// after publishes the job's state after a run and, when it is final,
// enqueues its webhook and its batch's.
// result is the run's stored result when the run knows it (nil: read it).
func (l *lifecycle) after(ctx context.Context, r lifeRun, err error, result []byte) {
	s, spent := r.statusAfter(err)
	j := r.job(s, err)
	if !spent {
		j.Attempts-- // waiting for a key, or a worker that died: no run spent
	}
	if s == tasks.StatusSucceeded {
		if result == nil {
			result, _ = l.store.Result(ctx, r.id)
		}
		j = r.succeeded(result)
	}
	l.ended(ctx, r, j, l.publish(ctx, r, j))
}

// ended enqueues the webhooks of a job in state j, once published: its
// own when j is final, and its batch's when j completed the batch.
func (l *lifecycle) ended(ctx context.Context, r lifeRun, j tasks.Job, batchComplete bool) {
	if !j.Status.Final() {
		return
	}
	if r.callback != "" {
		l.enqueueJobWebhook(ctx, r, j)
	}
	if batchComplete {
		l.enqueueBatchWebhook(ctx, r)
	}
}

// succeeded is the job as GET /api/jobs/{id} shows it once the run stored
// result.
func (r lifeRun) succeeded(result []byte) tasks.Job {
	j := r.job(tasks.StatusSucceeded, nil)
	now := time.Now().UTC()
	j.CompletedAt = &now
	if json.Valid(result) {
		raw := json.RawMessage(result)
		j.Result = &raw
	}
	return j
}

func (l *lifecycle) enqueueJobWebhook(ctx context.Context, r lifeRun, j tasks.Job) {
	d, err := jobstore.JobWebhook(j, r.callback)
	if err == nil {
		err = l.store.EnqueueWebhook(ctx, l.client, d, r.ttl)
	}
	if err != nil {
		l.log.Error("could not enqueue the job's webhook", "job", r.id, "err", err)
	}
}

func (l *lifecycle) enqueueBatchWebhook(ctx context.Context, r lifeRun) {
	if err := l.store.BatchComplete(ctx, l.client, r.batch); err != nil {
		l.log.Error("could not enqueue the batch's webhook", "batch", r.batch, "err", err)
	}
}
