package keyring

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/redisconn"
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

var kindName = [...]string{"success", "no_fault", "cool_key", "cool_project", "suspect", "disable", "disable_project"}

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
	// State is StateCooling, StateDisabled or StatePaused (the whole
	// pool); "" when the report changed no state.
	State  State
	Until  time.Time
	Reason string
}

// Report records the outcome of a call with key, in one round trip, and
// returns the change of state it caused, for the caller to log.
func (r *Ring) Report(ctx context.Context, key Key, o Outcome) (Change, error) {
	keys, args, err := r.reportArgs(ctx, key, o)
	if err != nil {
		return Change{}, err
	}
	return changeOf(reportScript.Run(ctx, r.admin.rdb, keys, args...).Result())
}

// QueueReport adds the report of a call with key to pipe, so that it costs
// no round trip of its own (a worker sends it with the job's result); its
// Result is ready once pipe is executed. DisableProject reads the project's
// keys first: a rare report, worth a round trip.
func (r *Ring) QueueReport(ctx context.Context, pipe redis.Pipeliner, key Key, o Outcome) *ReportCmd {
	keys, args, err := r.reportArgs(ctx, key, o)
	if err != nil {
		return &ReportCmd{err: err}
	}
	return &ReportCmd{q: redisconn.Queue(ctx, pipe, r.admin.rdb, reportScript, keys, args...)}
}

// ReportCmd is a report queued on a pipeline.
type ReportCmd struct {
	q   *redisconn.Queued
	err error
}

// Result is the change of state the report caused, once the pipeline ran.
// A script Redis did not know is run again alone, with ctx.
func (c *ReportCmd) Result(ctx context.Context) (Change, error) {
	if c.err != nil {
		return Change{}, c.err
	}
	return changeOf(c.q.Result(ctx))
}

// reportArgs are report.lua's KEYS and ARGV for the outcome o of a call
// with key.
func (r *Ring) reportArgs(ctx context.Context, key Key, o Outcome) ([]string, []any, error) {
	if o.Kind < Success || o.Kind > DisableProject {
		return nil, nil, fmt.Errorf("keyring: unknown outcome kind %d", o.Kind)
	}
	s := r.snap.Load()
	n := r.admin.names
	keys := []string{n.key(key.Fingerprint), n.project(key.Project), n.pause(), n.storm(), n.ring(), n.wait(), n.why(),
		n.parked(), n.projKeys(), n.projUntil(), n.disabled(), n.probe(), n.probeN(), n.rpmLog(), n.keyUntil(), n.callsMin()}
	var others []any
	if o.Kind == DisableProject {
		var err error
		if keys, others, err = r.projectOthers(ctx, s, key, keys); err != nil {
			return nil, nil, err
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
	args := []any{kindName[o.Kind], o.Class, amount, mode, o.Reason, key.Project,
		probe, rand.IntN(200), r.opts.PoolPause.Milliseconds(), key.Fingerprint,
		key.lease, (time.Minute + r.opts.RPMMargin).Milliseconds(), r.opts.RPMMargin.Milliseconds()}
	return keys, append(args, others...), nil
}

// changeOf reads report.lua's reply.
func changeOf(res any, err error) (Change, error) {
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
	c := Change{State: State(state), Reason: reason}
	if until > 0 {
		c.Until = time.UnixMilli(until)
	}
	return c, nil
}

// projectOthers adds the state hashes (to keys) and fingerprints of every
// other key of key's project in the pool, including keys other replicas
// hold: a rare report, worth a read first.
func (r *Ring) projectOthers(ctx context.Context, s *snapshot, key Key, keys []string) ([]string, []any, error) {
	n := r.admin.names
	var others []any
	seen := map[string]bool{key.Fingerprint: true}
	add := func(fp string) {
		if !seen[fp] {
			seen[fp] = true
			keys = append(keys, n.key(fp))
			others = append(others, fp)
		}
	}
	for _, k := range s.keys {
		if k.Project == key.Project {
			add(k.Fingerprint)
		}
	}
	list, err := r.admin.rdb.HGet(ctx, n.projKeys(), key.Project).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("keyring: report: %w", err)
	}
	for _, fp := range strings.Fields(list) {
		add(fp)
	}
	return keys, others, nil
}

// DueProbes claims up to Options.ProbeBatch disabled keys whose probe is due (among
// the keys this replica holds), so that one replica, the caller, probes
// each; it schedules the next probe on a doubling interval, spread by up to
// 10%. It reads only the keys due (O(log n + ProbeBatch)): many keys
// disabled at once are probed a batch per call, never all together. A successful
// probe should Enable the key.
func (r *Ring) DueProbes(ctx context.Context) ([]Key, error) {
	s := r.snap.Load()
	if !s.announced.Load() {
		if err := r.announce(ctx, s); err != nil {
			return nil, err
		}
	}
	n := r.admin.names
	res, err := probeScript.Run(ctx, r.admin.rdb, []string{n.probe(), n.probeN(), n.set(s.digest)},
		r.opts.ProbeFirst.Milliseconds(), r.opts.ProbeMax.Milliseconds(), r.opts.ProbeBatch, rand.IntN(100)).Result()
	if err != nil {
		return nil, fmt.Errorf("keyring: probes: %w", err)
	}
	arr, ok := res.([]any)
	if !ok {
		return nil, fmt.Errorf("keyring: probes: unexpected reply %T", res)
	}
	var due []Key
	for _, v := range arr {
		fp, ok := v.(string)
		if i, held := s.byFP[fp]; ok && held {
			due = append(due, s.keys[i])
		}
	}
	return due, nil
}
