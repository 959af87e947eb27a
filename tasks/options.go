package tasks

import (
	"fmt"
	"strings"
)

// Service tiers a job may ask for ("tier"). A tier string, once shipped,
// never changes.
const (
	TierStandard = "standard" // the default; also ""
	TierFlex     = "flex"     // half price, best effort, minutes; may be shed
)

// JobOptions are the fields every job body may carry besides its task's
// own: which model answers it and on which service tier.
type JobOptions struct {
	// Model names the model that must answer, one of GEMINI_MODELS_ALLOWED.
	// Empty: the fallback chain of GEMINI_MODEL. A job that names a model
	// gets that model only: on a 404 it fails (not_found); when every
	// project is out of its daily quota it waits for the reset.
	Model string `json:"model,omitempty"`
	// Tier is "standard" (default) or "flex".
	Tier string `json:"tier,omitempty"`
}

// Flex reports a flex job.
func (o JobOptions) Flex() bool { return o.Tier == TierFlex }

// Validate reports a malformed model name or an unknown tier.
func (o JobOptions) Validate() error {
	if o.Model != "" && (len(o.Model) > 100 || strings.ContainsAny(o.Model, "/?#:|, \t\r\n")) {
		return fieldErr("model", "must be a model name such as \"gemini-3.5-flash\"")
	}
	switch o.Tier {
	case "", TierStandard, TierFlex:
		return nil
	}
	return fieldErr("tier", "must be %q or %q", TierStandard, TierFlex)
}

// CheckModel reports a model the deployment does not allow, naming the
// ones it does.
func (o JobOptions) CheckModel(allowed []string) error {
	if o.Model == "" {
		return nil
	}
	for _, m := range allowed {
		if m == o.Model {
			return nil
		}
	}
	return &FieldError{Field: "model", Message: fmt.Sprintf("%q is not allowed here; the allowed models are %s",
		o.Model, strings.Join(allowed, ", "))}
}
