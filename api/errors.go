package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/tasks"
)

// Error codes, each with one HTTP status.
const (
	CodeInvalidRequest   = "invalid_request"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeTooLarge         = "payload_too_large"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	// CodeQuotaExceeded: the caller's API token spent its daily cap
	// (API_TOKEN_CAPS); Retry-After says when the Pacific day ends.
	CodeQuotaExceeded = "quota_exceeded"
	// CodeIdempotencyKeyReused: an Idempotency-Key sent again with a
	// different request.
	CodeIdempotencyKeyReused = "idempotency_key_reused"
	// CodeConflict: the request does not fit the job's state (cancelling
	// a finished job).
	CodeConflict = "conflict"
)

var httpStatus = map[string]int{
	CodeInvalidRequest:       http.StatusBadRequest,
	CodeUnsupportedMedia:     http.StatusUnsupportedMediaType,
	CodeTooLarge:             http.StatusRequestEntityTooLarge,
	CodeNotFound:             http.StatusNotFound,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	CodeUnavailable:          http.StatusServiceUnavailable,
	CodeInternal:             http.StatusInternalServerError,
	CodeUnauthorized:         http.StatusUnauthorized,
	CodeForbidden:            http.StatusForbidden,
	CodeQuotaExceeded:        http.StatusTooManyRequests,
	CodeIdempotencyKeyReused: http.StatusUnprocessableEntity,
	CodeConflict:             http.StatusConflict,
}

// Error is an API error as clients see it.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errRedis marks a failure to reach Redis: the client may try again.
var errRedis = errors.New("the job store (Redis) is unreachable; try again shortly")

// writeError answers with err's status and JSON body. Only errors without
// a code of their own are logged: they are ours, not the client's.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		apiErr *Error
		field  *tasks.FieldError
	)
	switch {
	case errors.As(err, &apiErr):
	case errors.As(err, &field):
		apiErr = &Error{Code: CodeInvalidRequest, Message: field.Error(), Field: field.Field}
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		apiErr = &Error{Code: CodeNotFound, Message: "no job with that id (finished jobs are kept for JOB_RETENTION)"}
	case errors.Is(err, errRedis):
		// Once per redisLogEvery at ERROR, else at DEBUG: an outage is
		// every request failing, and keyq's Redis watcher reports it too.
		s.log.Log(r.Context(), s.redisLogLevel(), "redis unreachable", "method", r.Method, "path", r.URL.Path, "err", err)
		apiErr = &Error{Code: CodeUnavailable, Message: errRedis.Error()}
	default:
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		apiErr = &Error{Code: CodeInternal, Message: "internal error"}
	}
	status, ok := httpStatus[apiErr.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, map[string]*Error{"error": apiErr})
}

// redisLogEvery is how often a request failing for want of Redis is
// logged at ERROR.
const redisLogEvery = 30 * time.Second

func (s *Server) redisLogLevel() slog.Level {
	now := time.Now().UnixNano()
	last := s.redisLogged.Load()
	if now-last >= int64(redisLogEvery) && s.redisLogged.CompareAndSwap(last, now) {
		return slog.LevelError
	}
	return slog.LevelDebug
}

// writeJSON encodes before it writes the status, so that a value that
// cannot be encoded gives a 500 rather than a 200 with an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the answer could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
