package tasks

// Queue is the asynq queue keyq's jobs go through.
const Queue = "keyq"

// HeaderOwner is the task header naming the API token that made a job:
// its id (api.TokenID), never the token. Absent when the API is open.
const HeaderOwner = "keyq-owner"

// A job's runs. JOB_MAX_RETRY counts the runs after the first that a job
// may fail; asynq counts retries in MaxRetry. keyq enqueues with one retry
// more than asked (AsynqMaxRetry) and the worker fails the job itself at
// its last run (LastRun), because asynq v0.26 archives a task whose retries
// are spent before it asks whether the error was a failure at all: a job
// that only waited for a key at its last run would be lost.

// AsynqMaxRetry is the asynq MaxRetry to enqueue a job with that may be
// retried jobMaxRetry times (JOB_MAX_RETRY) after failed runs.
func AsynqMaxRetry(jobMaxRetry int) int { return jobMaxRetry + 1 }

// MaxRuns is how many runs a job of asynq MaxRetry m may fail.
func MaxRuns(asynqMaxRetry int) int { return max(asynqMaxRetry, 1) }

// LastRun reports whether a run, after retried failed ones, is the job's
// last: a failure now fails the job.
func LastRun(retried, asynqMaxRetry int) bool { return retried+1 >= MaxRuns(asynqMaxRetry) }

// AsynqArchives reports whether asynq itself archives (fails for good) a
// task whose run failed after retried retries. For keyq's own jobs the
// worker decides first (LastRun); this is asynq's rule, for any task.
func AsynqArchives(retried, asynqMaxRetry int) bool { return retried >= asynqMaxRetry }
