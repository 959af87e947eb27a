// Package client is a Go client of keyq's HTTP API: submit a job, read it,
// wait for it to finish. `keyq submit` is built on it.
//
// Every error answer of the API comes back as an *APIError; Retryable tells
// the ones worth trying again (Redis or the API briefly away).
package client
