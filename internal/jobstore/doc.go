// Package jobstore is keyq's own state of a job, kept in Redis beside
// asynq's: the event sequence and channel that wake waiters, the cancel
// marker, the webhook delivery state, the per-owner index of jobs and the
// batches. The API and the worker share it; every key is built in keys.go.
package jobstore
