// Package worker runs analyze-character jobs: it takes them from asynq, picks
// keys from the shared rotation, calls Gemini, fails over from key to key,
// and stores the result for polling.
//
// Any number of workers on any hosts share one rotation, because the keyring
// keeps its counter in Redis. A job run makes at most
// min(GEMINI_RETRIES+1, 2 x keys) attempts, waiting GEMINI_RETRY_DELAY before
// each switch, as the original in-process fix did; when every attempt fails the job goes back to
// asynq for a later run, up to JOB_MAX_RETRY times.
package worker
