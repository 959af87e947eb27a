package tasks

import (
	"encoding/json"
	"time"
)

// TypeDeliverWebhook is the task type of one webhook delivery: a job's (or
// a batch's) final JSON POSTed, signed, to its callback URL.
const TypeDeliverWebhook = "deliver-webhook"

// WebhookQueue is the asynq queue of webhook deliveries. Workers serve it
// with an asynq server of its own, so a slow receiver never holds a slot
// that a Gemini job could use.
const WebhookQueue = "keyq-webhooks"

// Task headers of a job, besides HeaderOwner.
const (
	// HeaderCallbackURL is the URL to POST the job's JSON to when it is
	// final. Absent: no webhook.
	HeaderCallbackURL = "keyq-callback-url"
	// HeaderBatch is the id of the batch the job belongs to.
	HeaderBatch = "keyq-batch"
	// HeaderRetention is the job's retention in whole seconds, so the
	// worker keeps keyq's own state of the job as long as asynq keeps it.
	HeaderRetention = "keyq-retention"
)

// WebhookWindow is how long keyq keeps trying to deliver one webhook.
const WebhookWindow = 24 * time.Hour

// DeliverWebhook is the payload of a deliver-webhook task. Body is the
// exact bytes sent on every attempt; MessageID the webhook-id header, the
// same on every attempt.
type DeliverWebhook struct {
	MessageID string          `json:"message_id"`
	URL       string          `json:"url"`
	Body      json.RawMessage `json:"body"`
	// JobID or BatchID names whose delivery state the attempts update.
	JobID     string    `json:"job_id,omitempty"`
	BatchID   string    `json:"batch_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// WebhookDelivery is the state of a webhook delivery as clients see it.
type WebhookDelivery string

// The states of a webhook delivery.
const (
	WebhookPending   WebhookDelivery = "pending"   // not yet answered 2xx; tried again with backoff
	WebhookDelivered WebhookDelivery = "delivered" // the receiver answered 2xx
	WebhookFailed    WebhookDelivery = "failed"    // given up after WebhookWindow
)

// WebhookState is what GET /api/jobs/{id} shows of a job's webhook.
type WebhookState struct {
	State         WebhookDelivery `json:"state"`
	Attempts      int             `json:"attempts"`
	LastStatus    int             `json:"last_status,omitempty"` // the receiver's HTTP status
	LastError     string          `json:"last_error,omitempty"`
	LastAttemptAt *time.Time      `json:"last_attempt_at,omitempty"`
}
