// Package metrics holds keyq's Prometheus metrics: the API's HTTP requests,
// jobs by final status and their latency from enqueue to finish, upstream
// (Gemini) call latency, key-pick latency, asynq's queue metrics, and a
// per-key collector that reads the pool's state on each scrape.
//
// Keys never appear in a metric: a key is named by its index, fingerprint
// and project, as in logs.
//
// The worker-side measures (ObserveUpstream, ObservePick, JobMiddleware)
// feed process-wide collectors, so that code deep in a job run can report
// without a registry being passed down; WorkerCollectors hands them to
// whichever registry the process serves.
package metrics
