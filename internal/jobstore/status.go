package jobstore

import "github.com/keyq/keyq/tasks"

// Overlay is a job's status given asynq's view of it (s) and keyq's own
// state: a job marked cancelled that asynq would still run is cancelled (a
// worker refuses it; the API archives it); an archived one is cancelled
// if its run ended as cancelled, or if it was cancelled before it ran.
// A job that succeeded stays succeeded: its result is paid for.
func Overlay(s tasks.Status, st State) tasks.Status {
	if st.Final == tasks.StatusSucceeded {
		// A run succeeded and said so; asynq may still retry it (a cancel
		// that cut its context as it ended), and that run finishes with
		// the stored result.
		return tasks.StatusSucceeded
	}
	if !st.Cancelled && st.Final != tasks.StatusCancelled {
		return s
	}
	switch s {
	case tasks.StatusQueued, tasks.StatusRetrying:
		return tasks.StatusCancelled
	case tasks.StatusFailed:
		if st.Final == tasks.StatusCancelled || st.CancelledWhile != "active" {
			return tasks.StatusCancelled
		}
	}
	return s
}

// asynqStatus maps asynq's state string in a task hash to a status; a
// pending task that was retried before shows as queued here.
func asynqStatus(state string) tasks.Status {
	switch state {
	case "active":
		return tasks.StatusRunning
	case "scheduled", "retry":
		return tasks.StatusRetrying
	case "completed":
		return tasks.StatusSucceeded
	case "archived":
		return tasks.StatusFailed
	case "":
		return ""
	}
	return tasks.StatusQueued
}
