// Package gemini is a small REST client for Google Gemini's generateContent
// call, and the classifier that turns every failure into an *Error with a
// stable Class.
//
// The client holds no key: each call takes the API key to use, so one Client
// serves a whole pool of keys. The key travels only in the x-goog-api-key
// header and never appears in an error: the exact key string is redacted from
// upstream messages and transport errors alike.
//
// The Class of an *Error says what the failure means for the key and for the
// job (see Error.Retryable, Error.KeyFault and Error.PerDay); the detailed
// fields (HTTPStatus, Status, Reason, RetryAfter, QuotaID) carry what the
// upstream said, for cooldowns and logs.
//
// Package geminifake provides a fake upstream that answers with real error
// bodies, for tests and for keyq's dev mode.
package gemini
