package tasks

// Status is a job's state as clients see it (GET /api/jobs/{id}, metrics,
// keyq submit). A status string, once shipped, never changes.
type Status string

// The statuses of a job.
const (
	StatusQueued    Status = "queued"    // waiting for a worker
	StatusRunning   Status = "running"   // a worker runs it now
	StatusRetrying  Status = "retrying"  // a run failed or waits for a key; it runs again later
	StatusSucceeded Status = "succeeded" // final: the result is stored
	StatusFailed    Status = "failed"    // final: see the job's error
	StatusCancelled Status = "cancelled" // final: DELETE /api/jobs/{id}; never run or retried again
)

// Final reports whether no further run will change the job.
func (s Status) Final() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// ErrorClass is a stable lowercase token naming why a job run failed. The
// upstream's own classes (gemini.Class: "unavailable", "rate_limited"...)
// travel as ErrorClass too; the ones below are keyq's.
type ErrorClass string

// keyq's own job error classes.
const (
	ClassBadPayload    ErrorClass = "bad_payload"     // the task's payload cannot be run: final
	ClassTooLarge      ErrorClass = "too_large"       // the request alone exceeds a per-minute token quota: final
	ClassNoKey         ErrorClass = "no_key"          // every key is disabled for good
	ClassWaitingForKey ErrorClass = "waiting_for_key" // every usable key is resting: not a failure
	ClassTimeout       ErrorClass = "timeout"         // the run outlived JOB_TIMEOUT
	ClassWorker        ErrorClass = "worker"          // anything else the worker could not do
	ClassCancelled     ErrorClass = "cancelled"       // a client cancelled the job: final
)
