package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/metrics"
)

// Events of keys and of the pool, for the keyq_key_events_total metric
// and the operator's alert webhook.
const (
	EventDisabled   = "disabled"    // a key was taken out of rotation
	EventLeaked     = "leaked"      // Google reported a key as leaked: replace it
	EventCooled     = "cooled"      // a key or its project started a cooldown
	EventPaused     = "paused"      // the whole pool paused (a 429 storm)
	EventAllCooling = "all_cooling" // no key can take a call now
)

// Alerts posts one message per event and key to an operator's webhook
// (ALERT_WEBHOOK_URL), in the shape Slack and most chat tools accept:
// {"text": "..."}. Keys are named by index and fingerprint, never shown.
// Every replica sees the same events; a Redis SET NX makes one of them
// send each, at most once an hour per event and key.
type Alerts struct {
	url  string
	rdb  redis.UniversalClient
	http *http.Client
	log  *slog.Logger
}

// alertWindow is how long an event of one key is not alerted again.
const alertWindow = time.Hour

// NewAlerts sends alerts to url; nil url (""), nil Alerts: none are sent.
func NewAlerts(url string, rdb redis.UniversalClient, log *slog.Logger) *Alerts {
	if url == "" {
		return nil
	}
	return &Alerts{url: url, rdb: rdb, http: &http.Client{Timeout: 5 * time.Second}, log: log}
}

// event records what a report changed, in metrics and alerts.
func (h *Handler) event(ring *keyring.Ring, key keyring.Key, c keyring.Change, o keyring.Outcome) {
	pool := ring.Pool()
	switch {
	case c.State == keyring.StateDisabled && strings.Contains(o.Reason, "leaked"):
		metrics.KeyEvent(pool, EventLeaked)
		h.alerts.send(pool, EventLeaked, key.Fingerprint,
			fmt.Sprintf("keyq: API key %s of pool %s was reported as LEAKED by Google and is disabled for good: replace it.", key, pool))
	case c.State == keyring.StateDisabled:
		metrics.KeyEvent(pool, EventDisabled)
		h.alerts.send(pool, EventDisabled, key.Fingerprint,
			fmt.Sprintf("keyq: API key %s of pool %s is disabled (%s).", key, pool, c.Reason))
	case c.State == keyring.StateCooling:
		metrics.KeyEvent(pool, EventCooled)
	case c.State == "paused":
		metrics.KeyEvent(pool, EventPaused)
		h.alerts.send(pool, EventPaused, "pool",
			fmt.Sprintf("keyq: the key pool %s is paused for a while: %s.", pool, c.Reason))
	}
}

// noKey alerts that no key of the pool can take a call.
func (h *Handler) noKey(ring *keyring.Ring, nk *keyring.NoKeyError) {
	pool := ring.Pool()
	h.alerts.send(pool, EventAllCooling, "pool",
		fmt.Sprintf("keyq: no key of pool %s can take a call now (%s); jobs wait.", pool, nk.Reason))
}

// send posts text once per event and subject (a fingerprint, or "pool")
// within alertWindow, fleet-wide. It does not wait: a slow or dead
// webhook never holds a job.
func (a *Alerts) send(pool, event, subject, text string) {
	if a == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		first, err := a.rdb.SetNX(ctx, alertKey(pool, event, subject), time.Now().Unix(), alertWindow).Result()
		if err != nil || !first {
			return
		}
		body, _ := json.Marshal(map[string]string{"text": text, "event": event, "pool": pool})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.http.Do(req)
		if err != nil {
			a.log.Warn("could not send an alert to ALERT_WEBHOOK_URL", "event", event, "err", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			a.log.Warn("ALERT_WEBHOOK_URL refused an alert", "event", event, "status", resp.StatusCode)
		}
	}()
}

// alertKey is the Redis key that makes one replica send an alert.
func alertKey(pool, event, subject string) string {
	return "keyq:{" + pool + "}:alert:" + event + ":" + subject
}
