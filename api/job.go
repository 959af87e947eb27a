package api

import (
	"encoding/json"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/tasks"
)

// Job statuses, as pollers see them.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusRetrying  = "retrying"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Job is the answer to GET /api/jobs/{id}.
type Job struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
	// Attempts counts the job's runs so far; each run may call Gemini
	// several times (see result.attempts).
	Attempts      int              `json:"attempts"`
	MaxAttempts   int              `json:"max_attempts"`
	NextAttemptAt *time.Time       `json:"next_attempt_at,omitempty"`
	CompletedAt   *time.Time       `json:"completed_at,omitempty"`
	Result        *json.RawMessage `json:"result,omitempty"`
	Error         *JobError        `json:"error,omitempty"`
}

// JobError is why a job's last run failed.
type JobError struct {
	Class   string `json:"class"`
	Message string `json:"message"`
}

func statusOf(info *asynq.TaskInfo) string {
	switch info.State {
	case asynq.TaskStateActive:
		return StatusRunning
	case asynq.TaskStateRetry:
		return StatusRetrying
	case asynq.TaskStateCompleted:
		return StatusSucceeded
	case asynq.TaskStateArchived:
		return StatusFailed
	default: // pending, scheduled, aggregating
		if info.Retried > 0 {
			return StatusRetrying // due again, waiting for a worker
		}
		return StatusQueued
	}
}

func jobOf(info *asynq.TaskInfo) Job {
	j := Job{
		ID:          info.ID,
		Type:        info.Type,
		Status:      statusOf(info),
		Attempts:    info.Retried,
		MaxAttempts: tasks.MaxRuns(info.MaxRetry),
	}
	switch j.Status {
	case StatusRunning, StatusSucceeded, StatusFailed:
		j.Attempts++ // the run under way or the last one
	case StatusRetrying:
		if t := info.NextProcessAt; !t.IsZero() {
			j.NextAttemptAt = &t
		}
	}
	if j.Status == StatusSucceeded && json.Valid(info.Result) {
		raw := json.RawMessage(info.Result)
		j.Result = &raw
	}
	if t := info.CompletedAt; !t.IsZero() {
		j.CompletedAt = &t
	}
	if info.LastErr != "" && (j.Status == StatusRetrying || j.Status == StatusFailed || j.Status == StatusRunning) {
		e := tasks.ParseJobError(info.LastErr)
		j.Error = &JobError{Class: e.Class, Message: e.Message}
	}
	return j
}
