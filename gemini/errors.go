package gemini

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Class is a stable lowercase token naming what kind of failure an *Error is.
// Classes show in job errors and metrics: a token, once shipped, never changes.
type Class string

// The classes. The comment of each says what the caller should do.
const (
	ClassUnavailable      Class = "unavailable"          // 503/502: model capacity, not the key's fault; next key
	ClassInternal         Class = "internal"             // 500 (and other 5xx): next key / retry
	ClassTimeout          Class = "timeout"              // 504, 408, per-call Timeout or caller deadline: retry
	ClassNetwork          Class = "network"              // dial error, reset, EOF, truncated error body on 5xx: retry
	ClassRateLimited      Class = "rate_limited"         // 429: next key (of another project)
	ClassKeyInvalid       Class = "key_invalid"          // 400 API_KEY_INVALID: next key; suspect the key
	ClassUnauthenticated  Class = "unauthenticated"      // 401: next key; disable the key
	ClassPermissionDenied Class = "permission_denied"    // 403: next key; disable the key (or project)
	ClassBadRequest       Class = "bad_request"          // 400 not about the key: fail the job
	ClassNotFound         Class = "not_found"            // 404 (model): fail the job, configuration error
	ClassLocation         Class = "location_unsupported" // 400 FAILED_PRECONDITION location: fail; whole pool refused
	ClassBlocked          Class = "blocked"              // 200 blocked prompt or answer: fail the job
	ClassMaxTokens        Class = "max_tokens"           // 200 finishReason MAX_TOKENS: fail the job
	ClassUnusable         Class = "unusable"             // 200 without usable text: one more attempt, then fail
	ClassBilling          Class = "billing"              // 402 / prepayment depleted / billing disabled: next key
	ClassCanceled         Class = "canceled"             // the caller's context was cancelled: stop
	ClassShed             Class = "shed"                 // 503/429 a flex request shed for capacity: not the key's fault; retry
)

// Error is every failure Client returns. No field and no Error() text ever
// contains the API key used for the call.
type Error struct {
	Class       Class
	HTTPStatus  int           // 0 for transport errors and invalid requests
	Status      string        // canonical status, e.g. "UNAVAILABLE"; "" if the body had none
	Reason      string        // ErrorInfo.reason ("API_KEY_INVALID", "CONSUMER_SUSPENDED"); for a 200: the block or finish reason
	Message     string        // upstream message (key redacted), or the explanation of a block or finish reason
	RetryAfter  time.Duration // RetryInfo.retryDelay, 0 if none
	QuotaID     string        // first QuotaFailure violation's quotaId
	QuotaValue  string        // first QuotaFailure violation's quotaValue (the limit)
	ProjectWide bool          // CONSUMER_SUSPENDED or SERVICE_DISABLED: every key of the project is affected
	Usage       *Usage        // for a 200 that was billed but not usable (MAX_TOKENS, blocked...): its usageMetadata
	cause       error         // redacted; for errors.Is(err, context.Canceled) and the like
}

// Error returns a one-line description, for example
// "gemini: unavailable (503 UNAVAILABLE): The model is overloaded. Please try again later."
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("gemini: ")
	b.WriteString(string(e.Class))
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " (%d", e.HTTPStatus)
		for _, s := range []string{e.Status, e.Reason} {
			if s != "" {
				b.WriteString(" " + s)
			}
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(strings.Join(strings.Fields(e.Message), " "))
	}
	return b.String()
}

// Unwrap returns the (redacted) cause of a transport error, or nil.
func (e *Error) Unwrap() error { return e.cause }

// Retryable reports whether another attempt in this run, possibly with another
// key, may succeed.
func (e *Error) Retryable() bool {
	switch e.Class {
	case ClassBadRequest, ClassNotFound, ClassLocation, ClassBlocked, ClassMaxTokens, ClassCanceled:
		return false
	}
	return true
}

// KeyFault reports whether the key itself is bad (invalid, unauthenticated,
// denied, or out of billing credit), as opposed to the request or the model.
func (e *Error) KeyFault() bool {
	switch e.Class {
	case ClassKeyInvalid, ClassUnauthenticated, ClassPermissionDenied, ClassBilling:
		return true
	}
	return false
}

// PerDay reports whether this is a 429 for a per-day quota: its RetryAfter is
// meaningless and the project's quota resets at midnight Pacific time.
func (e *Error) PerDay() bool {
	return e.Class == ClassRateLimited && strings.Contains(e.QuotaID, "PerDay")
}

// SpendCap reports a 429 for the project's rolling 10-minute spend cap
// (paid tiers): no retryDelay or per-minute wait is meaningful; the
// project's spend rolls out of the window within 10 minutes.
func (e *Error) SpendCap() bool {
	if e.Class != ClassRateLimited {
		return false
	}
	id, msg := strings.ToLower(e.QuotaID), strings.ToLower(e.Message)
	return strings.Contains(id, "spend") || strings.Contains(msg, "spend cap") || strings.Contains(msg, "spend-based") || strings.Contains(msg, "spending cap")
}

// envelope is Google's JSON error body.
type envelope struct {
	Error *struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Status  string            `json:"status"`
		Details []json.RawMessage `json:"details"`
	} `json:"error"`
}

type detail struct {
	Type       string `json:"@type"`
	Reason     string `json:"reason"`
	RetryDelay string `json:"retryDelay"`
	Violations []struct {
		QuotaID    string `json:"quotaId"`
		QuotaValue string `json:"quotaValue"`
	} `json:"violations"`
}

// classifyHTTP builds the *Error for a non-2xx answer.
func classifyHTTP(status int, body []byte, apiKey string) *Error {
	e := &Error{HTTPStatus: status}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil {
		e.Message = excerpt(body, apiKey)
		if status >= 500 && looksJSON(body) {
			// A JSON error body cut short: the connection broke mid-answer.
			e.Class = ClassNetwork
			e.Message = "truncated or unparseable error body: " + e.Message
			return e.redact(apiKey)
		}
		e.Class = classByStatus(status, e)
		return e.redact(apiKey)
	}
	e.Status, e.Message = env.Error.Status, env.Error.Message
	for _, raw := range env.Error.Details {
		var d detail
		if json.Unmarshal(raw, &d) != nil {
			continue
		}
		switch {
		case strings.HasSuffix(d.Type, "google.rpc.ErrorInfo") && e.Reason == "":
			e.Reason = d.Reason
		case strings.HasSuffix(d.Type, "google.rpc.RetryInfo"):
			if d, err := time.ParseDuration(d.RetryDelay); err == nil && d > 0 {
				e.RetryAfter = d
			}
		case strings.HasSuffix(d.Type, "google.rpc.QuotaFailure") && len(d.Violations) > 0 && e.QuotaID == "":
			e.QuotaID, e.QuotaValue = d.Violations[0].QuotaID, d.Violations[0].QuotaValue
		}
	}
	e.Class = classByStatus(status, e)
	if shed(status, e) {
		e.Class = ClassShed
	}
	e.ProjectWide = e.Reason == "CONSUMER_SUSPENDED" || e.Reason == "SERVICE_DISABLED"
	return e.redact(apiKey)
}

// shed reports a flex request Google dropped for lack of capacity (503,
// or a 429 that names no quota): the key and the project did nothing.
func shed(status int, e *Error) bool {
	msg := strings.ToLower(e.Message)
	return (status == 503 || status == 429 && e.QuotaID == "") && strings.Contains(msg, "flex")
}

func classByStatus(status int, e *Error) Class {
	msg := strings.ToLower(e.Message)
	switch {
	case status == 402, e.Reason == "BILLING_DISABLED",
		status < 500 && strings.Contains(msg, "prepayment") && strings.Contains(msg, "depleted"):
		return ClassBilling
	case status == 429:
		return ClassRateLimited
	case status == 401:
		return ClassUnauthenticated
	case status == 403:
		return ClassPermissionDenied
	case status == 400 && (e.Reason == "API_KEY_INVALID" || strings.Contains(msg, "api key not valid") || strings.Contains(msg, "api key expired")):
		return ClassKeyInvalid
	case status == 400 && e.Status == "FAILED_PRECONDITION" && (strings.Contains(msg, "location") || strings.Contains(msg, "country")):
		return ClassLocation
	case status == 404:
		return ClassNotFound
	case status == 408 || status == 504:
		return ClassTimeout
	case status == 502 || status == 503:
		return ClassUnavailable
	case status >= 500:
		return ClassInternal
	}
	return ClassBadRequest
}

// redact removes apiKey from every text field of e.
func (e *Error) redact(apiKey string) *Error {
	for _, s := range []*string{&e.Message, &e.Status, &e.Reason, &e.QuotaID, &e.QuotaValue} {
		*s = redact(*s, apiKey)
	}
	return e
}

// keyLike matches key material Google or a proxy may echo, whatever the key.
var keyLike = regexp.MustCompile(`(api_key:|[?&]key=)[^\s'"&]+`)

// redact replaces the exact key, and anything shaped like an echoed key,
// with "[redacted]".
func redact(s, apiKey string) string {
	if apiKey != "" {
		s = strings.ReplaceAll(s, apiKey, "[redacted]")
	}
	return keyLike.ReplaceAllString(s, "${1}[redacted]")
}

// redactedError stands in for a transport error: its text is redacted, and
// errors.Is still sees the original chain (context.Canceled, io.EOF,
// syscall.ECONNREFUSED...) without exposing it through Unwrap.
type redactedError struct {
	text string
	orig error
}

func (r *redactedError) Error() string        { return r.text }
func (r *redactedError) Is(target error) bool { return errors.Is(r.orig, target) }

func looksJSON(b []byte) bool {
	s := strings.TrimSpace(string(b))
	return strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[")
}

// excerpt returns a short, single-line, tag-free piece of a body that is not
// the JSON envelope (an HTML error page, a proxy's text). It redacts the key
// before it cuts: a key cut in half would no longer be found afterwards.
func excerpt(b []byte, apiKey string) string {
	const max = 200
	b = []byte(redact(string(b), apiKey))
	if len(b) > 4096 {
		b = b[:4096]
	}
	var out strings.Builder
	inTag := false
	for _, r := range strings.ToValidUTF8(string(b), "") {
		switch {
		case r == '<':
			inTag = true
			out.WriteRune(' ')
		case r == '>' && inTag:
			inTag = false
		case !inTag:
			out.WriteRune(r)
		}
	}
	s := strings.Join(strings.Fields(out.String()), " ")
	if len(s) > max {
		s = s[:max]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "..."
	}
	if s == "" {
		return "empty body"
	}
	return s
}
