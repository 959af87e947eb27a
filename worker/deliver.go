package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/webhook"
)

// DefaultWebhookConcurrency is how many deliveries a worker makes at once.
const DefaultWebhookConcurrency = 10

// deliverer runs deliver-webhook tasks: one signed POST per attempt, the
// same webhook-id and body bytes on every attempt, the outcome recorded in
// the job's (or batch's) hash for GET to show. It runs on an asynq server
// of its own (queue tasks.WebhookQueue), never in a Gemini job's slot.
type deliverer struct {
	store   *jobstore.Store
	client  *webhook.Client
	secrets []webhook.Secret
	log     *slog.Logger
	now     func() time.Time
}

func (d *deliverer) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p tasks.DeliverWebhook
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.MessageID == "" || p.URL == "" {
		return fmt.Errorf("not a webhook delivery: %w", asynq.SkipRetry)
	}
	key := jobstore.DeliveryKey(p)
	status, err := d.client.Send(ctx, p.URL, d.secrets, p.MessageID, d.now(), p.Body)
	state := tasks.WebhookDelivered
	errText := ""
	if err != nil {
		errText = err.Error()
		state = tasks.WebhookPending
		if d.now().Sub(p.CreatedAt) >= tasks.WebhookWindow {
			state = tasks.WebhookFailed
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), afterRunTimeout)
	defer cancel()
	if rerr := d.store.WebhookAttempt(rctx, key, state, status, errText); rerr != nil {
		d.log.Warn("could not record a webhook attempt", "webhook_id", p.MessageID, "err", rerr)
	}
	switch state {
	case tasks.WebhookDelivered:
		d.log.Info("webhook delivered", "webhook_id", p.MessageID, "status", status)
		return nil
	case tasks.WebhookFailed:
		d.log.Warn("webhook given up after "+tasks.WebhookWindow.String(), "webhook_id", p.MessageID, "err", errText)
		return fmt.Errorf("webhook %s: %s: %w", p.MessageID, errText, asynq.SkipRetry)
	}
	return fmt.Errorf("webhook %s: %s", p.MessageID, errText)
}

// newWebhookServer is the asynq server of webhook deliveries.
func newWebhookServer(rdb asynqRedis, opts Options, log *slog.Logger) *asynq.Server {
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: opts.webhookConcurrency(),
		Queues:      map[string]int{tasks.WebhookQueue: 1},
		RetryDelayFunc: func(n int, _ error, _ *asynq.Task) time.Duration {
			return jobstore.WebhookBackoff(cmp.Or(opts.WebhookRetryDelay, jobstore.DefaultWebhookRetryDelay), n)
		},
		TaskCheckInterval:        opts.taskCheckInterval(),
		DelayedTaskCheckInterval: opts.PollInterval,
		ShutdownTimeout:          webhook.DefaultTimeout + time.Second,
		Logger:                   asynqLogger{log},
	})
}
