package jobstore

import (
	"context"
	"strconv"
	"time"

	"github.com/keyq/keyq/tasks"
)

// The wh_* fields of a job's or batch's hash.
const (
	fState    = "wh_state"
	fAttempts = "wh_attempts"
	fStatus   = "wh_status"
	fError    = "wh_error"
	fAt       = "wh_at"
)

// DeliveryKey is the hash whose wh_* fields hold a delivery's state.
func DeliveryKey(d tasks.DeliverWebhook) string {
	if d.BatchID != "" {
		return BatchKey(d.BatchID)
	}
	return JobKey(d.JobID)
}

// WebhookPending records a delivery as enqueued, before its first attempt.
func (s *Store) WebhookPending(ctx context.Context, key string, ttl time.Duration) error {
	p := s.rdb.TxPipeline()
	p.HSetNX(ctx, key, fState, string(tasks.WebhookPending))
	p.Expire(ctx, key, ttl)
	_, err := p.Exec(ctx)
	return err
}

// WebhookAttempt records one delivery attempt: the receiver's status (0:
// none), the error text (never a secret: the sender's errors hold none),
// and the delivery's state after it.
func (s *Store) WebhookAttempt(ctx context.Context, key string, state tasks.WebhookDelivery, status int, errText string) error {
	p := s.rdb.TxPipeline()
	p.HIncrBy(ctx, key, fAttempts, 1)
	p.HSet(ctx, key, fState, string(state), fStatus, status, fError, errText, fAt, time.Now().UnixMilli())
	_, err := p.Exec(ctx)
	return err
}

func webhookOf(m map[string]string) *tasks.WebhookState {
	st, ok := m[fState]
	if !ok {
		return nil
	}
	w := &tasks.WebhookState{State: tasks.WebhookDelivery(st), LastError: m[fError]}
	w.Attempts, _ = strconv.Atoi(m[fAttempts])
	w.LastStatus, _ = strconv.Atoi(m[fStatus])
	if ms, err := strconv.ParseInt(m[fAt], 10, 64); err == nil && ms > 0 {
		t := time.UnixMilli(ms).UTC()
		w.LastAttemptAt = &t
	}
	return w
}
