package worker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/tasks"
)

// A cancel (DELETE /api/jobs/{id}) is recorded in Redis by the API before
// anything else, and asynq's own cancel of a running task is not final: it
// fails the run with context.Canceled and retries it (hibiken/asynq #968,
// #987, #532). So every run asks first: a job marked cancelled is never run,
// and a run that ends in error after the mark ends the job as cancelled
// (asynq.SkipRetry: archived). A run that succeeded keeps its result: the
// upstream call is paid for, and the cancel came too late.

// Errors of cancelled runs.
var (
	errCancelledBefore = &tasks.JobError{Class: tasks.ClassCancelled, Final: true,
		Message: "the job was cancelled before this run; it is not run"}
	errCancelledDuring = &tasks.JobError{Class: tasks.ClassCancelled, Final: true,
		Message: "the job was cancelled while it ran"}
)

// cancelled reports whether the job is marked cancelled. If Redis cannot
// say, the run goes ahead: a lost cancel is better than a lost job.
func cancelled(ctx context.Context, store *jobstore.Store, log *slog.Logger, id string) bool {
	ok, err := store.Cancelled(ctx, id)
	if err != nil {
		log.Warn("could not read the job's cancel mark; running it", "job", id, "err", err)
		return false
	}
	return ok
}

// cancelledRun turns the error of a run of a cancelled job into its final
// cancelled error; success and runs of jobs not cancelled are left alone.
func cancelledRun(ctx context.Context, store *jobstore.Store, log *slog.Logger, id string, err error) error {
	if err == nil || errors.Is(err, errCancelledBefore) {
		return err
	}
	if cancelled(ctx, store, log, id) {
		return errCancelledDuring
	}
	return err
}

// isCancel reports whether err is asynq's cancel of a running task
// (Inspector.CancelProcessing): the run's context was cancelled. Shutdown
// does not cancel it (asynq requeues instead).
func isCancel(err error) bool { return errors.Is(err, context.Canceled) }
