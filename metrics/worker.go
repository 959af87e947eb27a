package metrics

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyq/keyq/tasks"
)

// HeaderEnqueuedAt is the asynq task header in which the API records when
// it enqueued a job (Unix time in nanoseconds, decimal), so that the worker
// that finishes it can measure the job's whole latency.
const HeaderEnqueuedAt = "keyq-enqueued-at"

// EnqueueHeaders returns the task headers the API adds to a job enqueued
// at now.
func EnqueueHeaders(now time.Time) map[string]string {
	return map[string]string{HeaderEnqueuedAt: strconv.FormatInt(now.UnixNano(), 10)}
}

// Latency buckets for calls and jobs of tens of seconds: 50ms to 10min.
var slowBuckets = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600}

// The worker's collectors: process-wide, so that the code of a job run can
// report without a registry passed down. WorkerCollectors hands them out.
var (
	upstreamSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "upstream", Name: "request_duration_seconds",
		Help:    "Time of one upstream (Gemini) call, by outcome class (ok, or the failure's class).",
		Buckets: slowBuckets,
	}, []string{"class"})
	pickSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "key", Name: "pick_duration_seconds",
		Help:    "Time to pick a key from the shared rotation (one Redis script call).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	})
	jobRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "job", Name: "runs_total",
		Help: "Job runs finished by this worker, by outcome: succeeded, failed (for good) or retrying.",
	}, []string{"outcome"})
	jobsDone = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "jobs_total",
		Help: "Jobs that reached a final status (succeeded, failed or cancelled) in this worker.",
	}, []string{"status"})
	keyEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "key", Name: "events_total",
		Help: "Changes of keys and of the pool seen by this worker: disabled, leaked, cooled, paused.",
	}, []string{"pool", "event"})
	keySetDiff = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: "worker", Name: "keys_differ",
		Help: "Keys of the fleet's set this worker lacks (missing) and keys it holds that the fleet's set lacks (extra); 0 and 0 when its key list is the fleet's.",
	}, []string{"pool", "kind"})
	jobSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "job", Name: "duration_seconds",
		Help:    "Time from a job's enqueue by the API to its final status, retries included, by final status.",
		Buckets: slowBuckets,
	}, []string{"status"})
)

// WorkerCollectors returns the worker-side collectors (upstream latency,
// key-pick latency, job runs, jobs by final status, job latency) for a
// registry to serve. Register them in at most one registry per process.
func WorkerCollectors() []prometheus.Collector {
	return []prometheus.Collector{upstreamSeconds, pickSeconds, jobRuns, jobsDone, jobSeconds, keyEvents, keySetDiff, tokensTotal, upstreamCalls}
}

// ObserveUpstream records one upstream call that took d and ended in class:
// "ok" for a usable answer, else the failure's class (a small fixed set,
// never a message: each value is a series).
func ObserveUpstream(class string, d time.Duration) {
	upstreamSeconds.WithLabelValues(class).Observe(d.Seconds())
}

// KeyEvent counts one change of a key or of the pool (see worker's Event*).
func KeyEvent(pool, event string) { keyEvents.WithLabelValues(pool, event).Inc() }

// InitKeyEvents makes the pool's event series exist at 0, so that an
// increase() over them sees the first event.
func InitKeyEvents(pool string, events ...string) {
	for _, e := range events {
		keyEvents.WithLabelValues(pool, e)
	}
}

// SetKeySetDiff records how this worker's key list differs from the fleet's.
func SetKeySetDiff(pool string, missing, extra int) {
	keySetDiff.WithLabelValues(pool, "missing").Set(float64(missing))
	keySetDiff.WithLabelValues(pool, "extra").Set(float64(extra))
}

// ObservePick records one key pick from the shared rotation that took d.
func ObservePick(d time.Duration) {
	pickSeconds.Observe(d.Seconds())
}

// JobMiddleware counts each job run that next finishes, and each job that
// reaches its final status with the time since the API enqueued it. Use it
// on the worker's asynq.ServeMux: mux.Use(metrics.JobMiddleware).
//
// A run whose worker dies is not seen here; asynq's recoverer puts the job
// back, and the run that finishes it is counted.
func JobMiddleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		status := finalStatus(ctx, err)
		if status == "" {
			jobRuns.WithLabelValues("retrying").Inc()
			return err
		}
		jobRuns.WithLabelValues(string(status)).Inc()
		jobsDone.WithLabelValues(string(status)).Inc()
		if at, ok := enqueuedAt(t); ok {
			jobSeconds.WithLabelValues(string(status)).Observe(time.Since(at).Seconds())
		}
		return err
	})
}

// finalStatus is the job's status after a run that returned err, or "" if
// asynq will run it again.
func finalStatus(ctx context.Context, err error) tasks.Status {
	if err == nil {
		return tasks.StatusSucceeded
	}
	if errors.Is(err, asynq.SkipRetry) {
		var je *tasks.JobError
		if errors.As(err, &je) && je.Class == tasks.ClassCancelled {
			return tasks.StatusCancelled
		}
		return tasks.StatusFailed
	}
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	if ok1 && ok2 && tasks.AsynqArchives(retried, maxRetry) {
		return tasks.StatusFailed
	}
	return ""
}

func enqueuedAt(t *asynq.Task) (time.Time, bool) {
	v, ok := t.Headers()[HeaderEnqueuedAt]
	if !ok {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ns <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}
