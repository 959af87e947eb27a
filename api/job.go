package api

import (
	"encoding/json"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/tasks"
)

// Job is the answer to GET /api/jobs/{id} (the type lives in tasks, the
// contract with clients).
type Job = tasks.Job

// JobError is why a job's last run failed.
type JobError = tasks.JobStatusError

func statusOf(info *asynq.TaskInfo) tasks.Status {
	switch info.State {
	case asynq.TaskStateActive:
		return tasks.StatusRunning
	case asynq.TaskStateRetry:
		return tasks.StatusRetrying
	case asynq.TaskStateCompleted:
		return tasks.StatusSucceeded
	case asynq.TaskStateArchived:
		if tasks.ParseJobError(info.LastErr).Class == tasks.ClassCancelled {
			return tasks.StatusCancelled // a run refused or cut by a cancel
		}
		return tasks.StatusFailed
	default: // pending, scheduled, aggregating
		if info.Retried > 0 {
			return tasks.StatusRetrying // due again, waiting for a worker
		}
		return tasks.StatusQueued
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
	case tasks.StatusRunning, tasks.StatusSucceeded, tasks.StatusFailed:
		j.Attempts++ // the run under way or the last one
	case tasks.StatusRetrying:
		if t := info.NextProcessAt; !t.IsZero() {
			j.NextAttemptAt = &t
		}
	}
	if j.Status == tasks.StatusSucceeded && json.Valid(info.Result) {
		raw := json.RawMessage(info.Result)
		j.Result = &raw
	}
	if t := info.CompletedAt; !t.IsZero() {
		j.CompletedAt = &t
	}
	if info.LastErr != "" && (j.Status == tasks.StatusRetrying || j.Status == tasks.StatusFailed ||
		j.Status == tasks.StatusRunning || j.Status == tasks.StatusCancelled) {
		e := tasks.ParseJobError(info.LastErr)
		j.Error = &tasks.JobStatusError{Class: e.Class, Message: e.Message}
	}
	return j
}
