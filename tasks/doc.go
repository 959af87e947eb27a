// Package tasks is the contract between the API, which enqueues jobs, and
// the workers, which run them: task type names, payloads and their
// validation, the prompt and answer schema, results and job errors.
//
// A type string, once shipped, never changes: jobs already in Redis carry it.
package tasks
