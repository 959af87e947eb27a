package tasks

import (
	"encoding/json"
	"regexp"

	"github.com/hibiken/asynq"
)

// Result is what a succeeded job stores for polling. The task type's Read
// fills its own part (Analysis, or Text/JSON/FinishReason/SafetyRatings);
// the worker fills the rest.
type Result struct {
	// Analysis is an analyze-character job's answer.
	Analysis CharacterAnalysis `json:"analysis,omitzero"`
	// Text is a generate job's answer text, when no JSON was asked for.
	Text string `json:"text,omitempty"`
	// JSON is a generate job's answer, parsed, when a schema or
	// responseMimeType application/json was given.
	JSON json.RawMessage `json:"json,omitempty"`
	// FinishReason ("STOP") and SafetyRatings (as Google sent them), for
	// generate jobs.
	FinishReason  string          `json:"finish_reason,omitempty"`
	SafetyRatings json.RawMessage `json:"safety_ratings,omitempty"`

	// Model is the model that answered: a name of GEMINI_MODEL's chain or
	// the job's own "model".
	Model string `json:"model"`
	// ModelVersion is the version Google reports (modelVersion).
	ModelVersion string `json:"model_version,omitempty"`
	// ChainPosition is Model's place in the fallback chain, 1 for the
	// first; 0 for a job that named its model.
	ChainPosition int `json:"chain_position,omitempty"`
	// Tier is "flex" for a flex job, else omitted (standard).
	Tier  string `json:"tier,omitempty"`
	Usage Usage  `json:"usage"`
	// Key names the key that served the answer: "#2". Never the key.
	Key            string `json:"key"`
	KeyFingerprint string `json:"key_fingerprint"`
	// Attempts is how many upstream calls the successful run made.
	Attempts int `json:"attempts"`
	// DurationMS is the successful run's wall time in milliseconds.
	DurationMS int64 `json:"duration_ms"`
}

// Usage is the model's token count for the answer (usageMetadata).
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CandidatesTokens int `json:"candidates_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// ThoughtsTokens are thinking tokens, billed as output.
	ThoughtsTokens int `json:"thoughts_tokens,omitempty"`
	// CachedTokens are the part of PromptTokens read from the cache.
	CachedTokens int `json:"cached_tokens,omitempty"`
}

// JobError is why a job run failed. Its text, "class: message", is what
// asynq keeps as the task's last error; ParseJobError reads it back.
type JobError struct {
	// Class is a stable lowercase token: "unavailable", "blocked", ...
	Class   ErrorClass
	Message string
	// Final marks an error no retry can mend; the job fails at once.
	Final bool
	// Cause is what the worker branches on (a keyring.NoKeyError); its
	// text is not part of Error.
	Cause error
}

func (e *JobError) Error() string { return string(e.Class) + ": " + e.Message }

// Unwrap gives the cause, and makes a final error asynq.SkipRetry so that
// asynq archives the job.
func (e *JobError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Final {
		errs = append(errs, asynq.SkipRetry)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

var classPrefix = regexp.MustCompile(`^([a-z][a-z_]{1,39}): `)

// ParseJobError reads a JobError back from a task's last error text. Text
// that did not come from a JobError (a panic, a timeout of the whole run) is
// of class "worker", or "timeout" when the run outlived JOB_TIMEOUT.
func ParseJobError(s string) JobError {
	if s == "context deadline exceeded" {
		return JobError{Class: ClassTimeout, Message: "the job run took longer than JOB_TIMEOUT"}
	}
	if m := classPrefix.FindStringSubmatch(s); m != nil {
		return JobError{Class: ErrorClass(m[1]), Message: s[len(m[0]):]}
	}
	return JobError{Class: ClassWorker, Message: s}
}
