package keyring

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Kind is what a call's outcome means for its key.
type Kind int

// The kinds of outcome. The caller (which knows the upstream's errors)
// chooses; the keyring only applies them.
const (
	// Success counts a success and clears the key's strikes.
	Success Kind = iota
	// NoFault counts a failure that says nothing of the key: the model
	// overloaded, a bad request, a timeout.
	NoFault
	// CoolKey rests the key alone for Outcome.For.
	CoolKey
	// CoolProject rests every key of the project for Outcome.For, or until
	// Outcome.Until, or (Grow) for a time that doubles on repeats.
	CoolProject
	// Suspect cools the key for Outcome.For the first time, and disables
	// it (with probes) if it happens again before a success.
	Suspect
	// Disable takes the key out of rotation; with Probe it is probed again
	// on a growing schedule, without it only an operator brings it back.
	Disable
	// DisableProject disables every key of the key's project.
	DisableProject
)

var kindName = [...]string{"success", "fault", "cool_key", "cool_project", "suspect", "disable", "disable_project"}

// Outcome is what one call with a key came to.
type Outcome struct {
	Kind Kind
	// Class names the failure for the key's counters ("rate_limited").
	Class string
	// For is the length of a cooldown, or the base of a growing one.
	For time.Duration
	// Until ends a CoolProject at a moment (a per-day quota's reset).
	Until time.Time
	// Grow makes a CoolProject double on each repeat within 10 minutes.
	Grow bool
	// Probe: a disabled key is probed again on a schedule.
	Probe bool
	// Reason is shown to operators: "429 PerMinute", "403 leaked".
	Reason string
}

// Change is the state a report moved a key, its project or the pool into.
type Change struct {
	// State is StateCooling, StateDisabled or "paused" (the whole pool);
	// "" when the report changed no state.
	State  string
	Until  time.Time
	Reason string
}

// Report records the outcome of a call with key, in one round trip, and
// returns the change of state it caused, for the caller to log.
func (r *Ring) Report(ctx context.Context, key Key, o Outcome) (Change, error) {
	if o.Kind < Success || o.Kind > DisableProject {
		return Change{}, fmt.Errorf("keyring: unknown outcome kind %d", o.Kind)
	}
	s := r.snap.Load()
	keys := []string{r.names.key(key.Fingerprint), r.names.project(key.Project), r.names.pause(), r.names.storm()}
	if o.Kind == DisableProject {
		for _, k := range s.keys {
			if k.Project == key.Project && k.Fingerprint != key.Fingerprint {
				keys = append(keys, r.names.key(k.Fingerprint))
			}
		}
	}
	amount, mode := o.For.Milliseconds(), "for"
	switch {
	case o.Kind == CoolProject && !o.Until.IsZero():
		amount, mode = o.Until.UnixMilli(), "at"
	case o.Kind == CoolProject && o.Grow:
		mode = "grow"
	}
	var probe int64
	if o.Probe {
		probe = r.opts.ProbeFirst.Milliseconds()
	}
	res, err := reportScript.Run(ctx, r.rdb, keys,
		kindName[o.Kind], o.Class, amount, mode, o.Reason, key.Project, len(s.projects),
		probe, rand.IntN(200), r.opts.PoolPause.Milliseconds()).Result()
	if err != nil {
		return Change{}, fmt.Errorf("keyring: report: %w", err)
	}
	arr, ok := res.([]any)
	if !ok || len(arr) != 3 {
		return Change{}, fmt.Errorf("keyring: report: unexpected reply %T", res)
	}
	state, _ := arr[0].(string)
	until, _ := arr[1].(int64)
	reason, _ := arr[2].(string)
	c := Change{State: state, Reason: reason}
	if until > 0 {
		c.Until = time.UnixMilli(until)
	}
	return c, nil
}

// DueProbes claims the disabled keys whose probe is due, so that one
// replica, the caller, probes each; it schedules the next probe on a
// doubling interval. A successful probe should Enable the key.
func (r *Ring) DueProbes(ctx context.Context) ([]Key, error) {
	s := r.snap.Load()
	keys := make([]string, len(s.keys))
	for i, k := range s.keys {
		keys[i] = r.names.key(k.Fingerprint)
	}
	res, err := probeScript.Run(ctx, r.rdb, keys, r.opts.ProbeFirst.Milliseconds(), r.opts.ProbeMax.Milliseconds()).Result()
	if err != nil {
		return nil, fmt.Errorf("keyring: probes: %w", err)
	}
	arr, ok := res.([]any)
	if !ok {
		return nil, fmt.Errorf("keyring: probes: unexpected reply %T", res)
	}
	var due []Key
	for _, v := range arr {
		if i, ok := v.(int64); ok && i >= 1 && int(i) <= len(s.keys) {
			due = append(due, s.keys[i-1])
		}
	}
	return due, nil
}
