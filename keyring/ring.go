package keyring

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync/atomic"
	"time"
	_ "time/tzdata" // the Pacific day of per-day quotas, also in images without zoneinfo

	"github.com/redis/go-redis/v9"
)

// Defaults for Options.
const (
	DefaultPrefix     = "keyq"
	DefaultPool       = "gemini"
	DefaultPoolPause  = 15 * time.Second
	DefaultProbeFirst = 10 * time.Minute
	DefaultProbeMax   = 6 * time.Hour
	DefaultRPMMargin  = time.Second
)

// Options tune a Ring. The zero value uses the defaults.
type Options struct {
	// Prefix starts every Redis key of the keyring. Default "keyq".
	Prefix string
	// Pool names the rotation and its state; replicas with the same pool
	// share them. keyq uses the model name, so that cooldowns and budgets
	// are per project and model. Default "gemini".
	Pool string
	// RPM and RPD are calls per minute and per day (Pacific) allowed to
	// each project; 0, the default, means no limit.
	RPM, RPD int
	// RPMMargin widens the per-minute window: a call is counted when it is
	// picked and upstream when it arrives, so a window of exactly a minute
	// lets call RPM+1 reach Google while call 1 still counts there, and the
	// 429 that follows rests the project for Google's retryDelay (~26 s).
	// It costs RPM x margin/(1m+margin) of the budget. Default 1s.
	RPMMargin time.Duration
	// PoolPause is how long the whole pool rests when most projects answer
	// 429 within 10 seconds. Default 15s.
	PoolPause time.Duration
	// ProbeFirst is when a key disabled on suspicion is first probed again;
	// the interval doubles after each failed probe up to ProbeMax.
	// Defaults 10m and 6h.
	ProbeFirst, ProbeMax time.Duration
	// Now is the clock for the Pacific date of per-day budgets (everything
	// else runs on Redis's clock). Default time.Now.
	Now func() time.Time
}

// Ring is the pool of keys, its rotation and its health, shared through
// Redis by every process that opens a Ring with the same Prefix and Pool.
// It is safe for concurrent use; SetKeys swaps the keys under it.
type Ring struct {
	*Admin
	opts Options
	snap atomic.Pointer[snapshot]
}

// snapshot is one key list with what the scripts need of it.
type snapshot struct {
	keys      []Key
	projects  []string       // distinct, in order of first appearance
	projectOf []int          // slot -> 1-based number in projects
	slotOf    map[string]int // fingerprint -> slot
}

var (
	//go:embed pick.lua
	pickSource string
	//go:embed report.lua
	reportSource string
	//go:embed probe.lua
	probeSource string

	pickScript   = redis.NewScript(pickSource)
	reportScript = redis.NewScript(reportSource)
	probeScript  = redis.NewScript(probeSource)
)

var pacific, _ = time.LoadLocation("America/Los_Angeles") // embedded: cannot fail

// New opens the ring of keys on rdb. Every replica should be given the same
// keys in the same order for the rotation to be one rotation; state follows
// a key's fingerprint, so it survives reorderings and reloads.
func New(rdb redis.UniversalClient, keys []Key, opts Options) (*Ring, error) {
	if rdb == nil {
		return nil, errors.New("keyring: nil Redis client")
	}
	if opts.RPM < 0 || opts.RPD < 0 || opts.PoolPause < 0 || opts.ProbeFirst < 0 || opts.ProbeMax < 0 || opts.RPMMargin < 0 {
		return nil, errors.New("keyring: RPM, RPD, RPMMargin, PoolPause, ProbeFirst and ProbeMax must not be negative")
	}
	opts.RPMMargin = cmp.Or(opts.RPMMargin, DefaultRPMMargin)
	opts.PoolPause = cmp.Or(opts.PoolPause, DefaultPoolPause)
	opts.ProbeFirst = cmp.Or(opts.ProbeFirst, DefaultProbeFirst)
	opts.ProbeMax = max(cmp.Or(opts.ProbeMax, DefaultProbeMax), opts.ProbeFirst)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Ring{Admin: NewAdmin(rdb, opts), opts: opts}
	if err := r.swap(keys); err != nil {
		return nil, err
	}
	return r, nil
}

// SetKeys replaces the keys, as after a reload of the key file, and
// announces them. A key keeps its state: state is by fingerprint.
func (r *Ring) SetKeys(ctx context.Context, keys []Key) error {
	if err := r.swap(keys); err != nil {
		return err
	}
	return r.Announce(ctx)
}

func (r *Ring) swap(keys []Key) error {
	if len(keys) == 0 {
		return ErrNoKeys
	}
	s := &snapshot{keys: append([]Key(nil), keys...), projectOf: make([]int, len(keys)), slotOf: make(map[string]int, len(keys))}
	pnum := make(map[string]int)
	for i, k := range keys {
		if k.Index != i+1 || k.secret == "" || k.Project == "" {
			return fmt.Errorf("keyring: key at position %d has index %d: build keys with ParseKeys or NewKey(position, secret)", i+1, k.Index)
		}
		if _, dup := s.slotOf[k.Fingerprint]; dup {
			return fmt.Errorf("keyring: keys %d and %d have the same fingerprint", s.slotOf[k.Fingerprint]+1, i+1)
		}
		s.slotOf[k.Fingerprint] = i
		if _, ok := pnum[k.Project]; !ok {
			s.projects = append(s.projects, k.Project)
			pnum[k.Project] = len(s.projects)
		}
		s.projectOf[i] = pnum[k.Project]
	}
	r.snap.Store(s)
	return nil
}

// Announce records the fingerprints, indexes and projects of the keys in
// Redis, for operators' views of the pool (Admin.Statuses). Never the keys.
func (r *Ring) Announce(ctx context.Context) error {
	s := r.snap.Load()
	fields := make([]any, 0, 2*len(s.keys))
	for _, k := range s.keys {
		fields = append(fields, k.Fingerprint, strconv.Itoa(k.Index)+"|"+k.Project)
	}
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, r.names.members())
		p.HSet(ctx, r.names.members(), fields...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("keyring: announce keys: %w", err)
	}
	return nil
}

// Keys returns the keys of the ring in their configured order.
func (r *Ring) Keys() []Key { return append([]Key(nil), r.snap.Load().keys...) }

// Len is the number of keys.
func (r *Ring) Len() int { return len(r.snap.Load().keys) }

// Projects is the number of distinct projects.
func (r *Ring) Projects() int { return len(r.snap.Load().projects) }

// NoKeyError is Pick's answer when no key can take a call now. It is not a
// failure of the job: the job should wait RetryAfter and try again.
type NoKeyError struct {
	// RetryAfter is when the first key may be usable again; negative when
	// none ever will by itself (every key disabled for good).
	RetryAfter time.Duration
	// Reason says why, for operators: "projects cooling down", ...
	Reason string
}

func (e *NoKeyError) Error() string {
	if e.RetryAfter < 0 {
		return "no key can be used: " + e.Reason
	}
	return fmt.Sprintf("no key can be used now (%s); the first is back in %s", e.Reason, e.RetryAfter.Round(time.Millisecond))
}

// Pick returns the next usable key of the fleet-wide rotation, in one Redis
// round trip, and counts the call against its project's budgets. Keys in
// skip are passed over while any other key is usable; other replicas move
// the counter meanwhile, so "next" is the next usable slot from wherever the
// shared counter stands. When no key is usable it returns a *NoKeyError.
func (r *Ring) Pick(ctx context.Context, skip *Skip) (Key, error) {
	s := r.snap.Load()
	n, m := len(s.keys), len(s.projects)
	now := r.opts.Now().In(pacific)
	day := now.Format("2006-01-02")
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, pacific)

	keys := make([]string, 0, 2+n+3*m)
	keys = append(keys, r.names.rotation(), r.names.pause())
	for _, k := range s.keys {
		keys = append(keys, r.names.key(k.Fingerprint))
	}
	for _, p := range s.projects {
		keys = append(keys, r.names.project(p), r.names.rpm(p), r.names.rpd(p, day))
	}
	args := make([]any, 0, 6+n+skip.Len())
	args = append(args, n, m, r.opts.RPM, r.opts.RPD, midnight.UnixMilli(), (time.Minute + r.opts.RPMMargin).Milliseconds())
	for _, p := range s.projectOf {
		args = append(args, p)
	}
	for fp := range skip.fingerprints() {
		if slot, ok := s.slotOf[fp]; ok {
			args = append(args, slot)
		}
	}
	res, err := pickScript.Run(ctx, r.rdb, keys, args...).Result()
	if err != nil {
		return Key{}, fmt.Errorf("keyring: pick: %w", err)
	}
	arr, ok := res.([]any)
	if !ok || len(arr) < 2 {
		return Key{}, fmt.Errorf("keyring: pick: unexpected reply %T", res)
	}
	slot, ok1 := arr[0].(int64)
	wait, ok2 := arr[1].(int64)
	if !ok1 || !ok2 {
		return Key{}, fmt.Errorf("keyring: pick: unexpected reply %v", arr)
	}
	if slot < 0 {
		reason, _ := arr[2].(string)
		return Key{}, &NoKeyError{RetryAfter: time.Duration(wait) * time.Millisecond, Reason: reason}
	}
	if slot >= int64(n) {
		return Key{}, fmt.Errorf("keyring: pick: slot %d out of range for %d keys", slot, n)
	}
	return s.keys[slot], nil
}

// Skip is the set of keys one job run has tried. The zero value (and nil) is
// empty and ready to use; it is not safe for concurrent use.
type Skip struct{ set map[string]struct{} }

// Add marks the key as tried.
func (s *Skip) Add(k Key) {
	if s.set == nil {
		s.set = make(map[string]struct{})
	}
	s.set[k.Fingerprint] = struct{}{}
}

// Has reports whether the key was marked.
func (s *Skip) Has(k Key) bool {
	_, ok := s.fingerprints()[k.Fingerprint]
	return ok
}

// Len is the number of marked keys.
func (s *Skip) Len() int { return len(s.fingerprints()) }

// Clear forgets every mark.
func (s *Skip) Clear() { clear(s.set) }

// Clone returns an independent copy.
func (s *Skip) Clone() Skip { return Skip{set: maps.Clone(s.fingerprints())} }

func (s *Skip) fingerprints() map[string]struct{} {
	if s == nil {
		return nil
	}
	return s.set
}
