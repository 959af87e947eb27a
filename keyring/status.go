package keyring

import (
	"errors"
	"time"
)

// State is a key's state as operators see it, or (StatePaused) the whole
// pool's in a Change.
type State string

// The states.
const (
	StateReady    State = "ready"
	StateCooling  State = "cooling"
	StateDisabled State = "disabled"
	// StatePaused is the whole pool resting after a 429 storm (Change only;
	// a key of a paused pool shows as cooling).
	StatePaused State = "paused"
)

// Status is what the fleet knows of one key: never the key itself.
type Status struct {
	Index       int    `json:"index"`
	Fingerprint string `json:"fingerprint"`
	Project     string `json:"project"`
	// State is ready, cooling or disabled.
	State State `json:"state"`
	// Until is when a cooldown ends, or when a disabled key is probed next.
	Until  *time.Time `json:"until,omitempty"`
	Reason string     `json:"reason,omitempty"`
	// Picks, Successes and Failures (by class) count since the key was
	// first seen by the fleet.
	Picks     int64            `json:"picks"`
	Successes int64            `json:"successes"`
	Failures  map[string]int64 `json:"failures"`
	// LastFailure is the class of the key's last failed call, at
	// LastFailureAt; LastUsedAt is when a call with it last ended.
	LastFailure   string     `json:"last_failure,omitempty"`
	LastFailureAt *time.Time `json:"last_failure_at,omitempty"`
	LastUsedAt    *time.Time `json:"last_used_at,omitempty"`
}

// ErrUnknownKey is returned for a fingerprint that no worker has announced.
var ErrUnknownKey = errors.New("keyring: no key with that fingerprint")
