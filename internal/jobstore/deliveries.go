package jobstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/tasks"
)

// Webhook deliveries retry with WebhookBackoff until tasks.WebhookWindow
// has passed since the first attempt: 5 s doubling to an hour, about 33
// attempts in 24 h. WebhookMaxRetry is asynq's bound above that; the
// delivery handler gives up at the window.
const WebhookMaxRetry = 40

// DefaultWebhookRetryDelay is the wait before a delivery's first retry.
const DefaultWebhookRetryDelay = 5 * time.Second

// WebhookBackoff is the wait before a delivery's retry n (0-based): base
// doubling, up to an hour.
func WebhookBackoff(base time.Duration, n int) time.Duration {
	d := base << min(n, 20)
	if d <= 0 || d > time.Hour {
		return time.Hour
	}
	return d
}

// JobWebhook is the delivery of a job's final JSON to url.
func JobWebhook(j tasks.Job, url string) (tasks.DeliverWebhook, error) {
	j.Webhook = nil
	b, err := json.Marshal(j)
	if err == nil && len(b) > maxWebhookBody {
		j.Result = nil // too large to send: the receiver GETs the job
		b, err = json.Marshal(j)
	}
	return tasks.DeliverWebhook{MessageID: "msg_" + j.ID, URL: url, Body: b, JobID: j.ID, CreatedAt: time.Now().UTC()}, err
}

// BatchWebhook is the delivery of a batch's final counts to url.
func BatchWebhook(b tasks.Batch, url string) (tasks.DeliverWebhook, error) {
	b.Webhook = nil
	body, err := json.Marshal(b)
	return tasks.DeliverWebhook{MessageID: "msg_batch_" + b.ID, URL: url, Body: body, BatchID: b.ID, CreatedAt: time.Now().UTC()}, err
}

// maxWebhookBody matches webhook.MaxBody (1 MiB), which jobstore does not import.
const maxWebhookBody = 1 << 20

// EnqueueWebhook enqueues a delivery, once: its task id is its message id,
// so a job that reaches its final state twice (at-least-once runs) is
// delivered once.
func (s *Store) EnqueueWebhook(ctx context.Context, c *asynq.Client, d tasks.DeliverWebhook, ttl time.Duration) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	t := asynq.NewTask(tasks.TypeDeliverWebhook, b, asynq.TaskID(d.MessageID), asynq.Queue(tasks.WebhookQueue),
		asynq.MaxRetry(WebhookMaxRetry), asynq.Timeout(time.Minute), asynq.Retention(time.Hour))
	if _, err := c.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return s.WebhookPending(ctx, DeliveryKey(d), ttl)
}
