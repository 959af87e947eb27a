package tasks

import (
	"encoding/json"
	"time"
)

// Job is a job as clients see it: the answer to GET /api/jobs/{id}.
type Job struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status Status `json:"status"`
	// Attempts counts the job's runs so far; each run may call Gemini
	// several times (see result.attempts).
	Attempts      int              `json:"attempts"`
	MaxAttempts   int              `json:"max_attempts"`
	NextAttemptAt *time.Time       `json:"next_attempt_at,omitempty"`
	CompletedAt   *time.Time       `json:"completed_at,omitempty"`
	Result        *json.RawMessage `json:"result,omitempty"`
	Error         *JobStatusError  `json:"error,omitempty"`
	// Webhook is the delivery of the job's callback, when it has one.
	Webhook *WebhookState `json:"webhook,omitempty"`
}

// JobStatusError is why a job's last run failed, as clients see it.
type JobStatusError struct {
	Class   ErrorClass `json:"class"`
	Message string     `json:"message"`
}

// Accepted is the answer to a job submission.
type Accepted struct {
	ID        string `json:"id"`
	Status    Status `json:"status"`
	StatusURL string `json:"status_url"`
}
