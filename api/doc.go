// Package api is keyq's HTTP API: it accepts analyze-character jobs, stores
// them in Redis through asynq, answers at once with an id, and reports each
// job's status and result to pollers.
//
// Every error is JSON of one shape, {"error":{"code","message","field"}},
// with its HTTP status chosen in one table (errors.go).
package api
