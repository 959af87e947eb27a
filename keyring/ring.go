package keyring

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
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
	DefaultProbeBatch = 8
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
	// The margin holds a slot only until the call is reported: a call
	// answered within the margin frees its slot a minute after the
	// report (it reached the upstream before its answer came back), so
	// for calls shorter than the margin it costs RPM x latency/1m of the
	// budget rather than RPM x margin/(1m+margin). Default 1s.
	RPMMargin time.Duration
	// PoolPause is how long the whole pool rests when most projects answer
	// 429 within 10 seconds. Default 15s.
	PoolPause time.Duration
	// ProbeFirst is when a key disabled on suspicion is first probed again;
	// the interval doubles after each failed probe up to ProbeMax.
	// Defaults 10m and 6h.
	ProbeFirst, ProbeMax time.Duration
	// ProbeBatch is the most keys one DueProbes call claims. Default 8.
	ProbeBatch int
	// Now is the clock for the Pacific date of per-day budgets (everything
	// else runs on Redis's clock). Default time.Now.
	Now func() time.Time
}

// Ring is the pool of keys, its rotation and its health, shared through
// Redis by every process that opens a Ring with the same Prefix and Pool.
// It is safe for concurrent use; SetKeys swaps the keys under it.
//
// The pool's membership lives in Redis: the union of the keys the live
// replicas hold (by fingerprint). The rotation is "least recently picked
// first" over that pool, so replicas may list their keys in any order; a
// replica is only ever given keys it holds (see Membership).
type Ring struct {
	admin *Admin
	opts  Options
	id    string // this replica, in the pool's registry of sets
	snap  atomic.Pointer[snapshot]
	beat  atomic.Int64 // unix ms of the last pick that marked this replica alive
}

// snapshot is one key list with what the scripts need of it.
type snapshot struct {
	keys      []Key
	byFP      map[string]int // fingerprint -> position in keys
	projects  int
	digest    string      // of the sorted fingerprints
	announced atomic.Bool // Redis knows this set (Announce ran since the swap)
	pickKeys  []string    // the pick's KEYS but the last two (rpd, set)
}

var (
	//go:embed lib.lua
	libSource string
	//go:embed pick.lua
	pickSource string
	//go:embed report.lua
	reportSource string
	//go:embed probe.lua
	probeSource string
	//go:embed admin.lua
	adminSource string
	//go:embed announce.lua
	announceSource string

	pickScript     = redis.NewScript(libSource + pickSource)
	reportScript   = redis.NewScript(libSource + reportSource)
	probeScript    = redis.NewScript(probeSource)
	adminScript    = redis.NewScript(libSource + adminSource)
	announceScript = redis.NewScript(libSource + announceSource)
)

var pacific, _ = time.LoadLocation("America/Los_Angeles") // embedded: cannot fail

// NextPacificMidnight is the first midnight America/Los_Angeles after now:
// when Gemini's per-day quotas (and GEMINI_RPD budgets) reset.
func NextPacificMidnight(now time.Time) time.Time {
	t := now.In(pacific)
	return time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, pacific)
}

// liveFor is how long a replica that has neither picked nor announced
// still counts as holding its keys; picks mark a replica alive every
// beatEvery.
const (
	liveFor   = 2 * time.Minute
	beatEvery = 10 * time.Second
)

// New opens the ring of keys on rdb. Replicas may list their keys in any
// order, and may even hold different keys (see Membership); state follows
// a key's fingerprint, so it survives reorderings and reloads. The keys
// join the pool in Redis at the first Pick, or at Announce.
func New(rdb redis.UniversalClient, keys []Key, opts Options) (*Ring, error) {
	if rdb == nil {
		return nil, errors.New("keyring: nil Redis client")
	}
	if opts.RPM < 0 || opts.RPD < 0 || opts.PoolPause < 0 || opts.ProbeFirst < 0 || opts.ProbeMax < 0 || opts.RPMMargin < 0 || opts.ProbeBatch < 0 {
		return nil, errors.New("keyring: RPM, RPD, RPMMargin, PoolPause, ProbeFirst, ProbeMax and ProbeBatch must not be negative")
	}
	opts.RPMMargin = cmp.Or(opts.RPMMargin, DefaultRPMMargin)
	opts.PoolPause = cmp.Or(opts.PoolPause, DefaultPoolPause)
	opts.ProbeFirst = cmp.Or(opts.ProbeFirst, DefaultProbeFirst)
	opts.ProbeMax = max(cmp.Or(opts.ProbeMax, DefaultProbeMax), opts.ProbeFirst)
	opts.ProbeBatch = cmp.Or(opts.ProbeBatch, DefaultProbeBatch)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var id [8]byte
	if _, err := crand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("keyring: replica id: %w", err)
	}
	r := &Ring{admin: NewAdmin(rdb, opts), opts: opts, id: hex.EncodeToString(id[:])}
	if err := r.swap(keys); err != nil {
		return nil, err
	}
	return r, nil
}

// Admin is the operators' view of the pool this ring belongs to.
func (r *Ring) Admin() *Admin { return r.admin }

// Enable is r.Admin().Enable.
func (r *Ring) Enable(ctx context.Context, fingerprint string) error {
	return r.admin.Enable(ctx, fingerprint)
}

// Disable is r.Admin().Disable.
func (r *Ring) Disable(ctx context.Context, fingerprint, reason string) error {
	return r.admin.Disable(ctx, fingerprint, reason)
}

// Statuses is r.Admin().Statuses.
func (r *Ring) Statuses(ctx context.Context) ([]Status, error) { return r.admin.Statuses(ctx) }

// Page is r.Admin().Page.
func (r *Ring) Page(ctx context.Context, q Query) (Page, error) { return r.admin.Page(ctx, q) }

// Summary is r.Admin().Summary.
func (r *Ring) Summary(ctx context.Context) (Summary, error) { return r.admin.Summary(ctx) }

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
	s := &snapshot{keys: append([]Key(nil), keys...), byFP: make(map[string]int, len(keys))}
	projects := make(map[string]struct{})
	for i, k := range keys {
		if k.Index != i+1 || k.secret == "" || k.Project == "" {
			return fmt.Errorf("keyring: key at position %d has index %d: build keys with ParseKeys or NewKey(position, secret)", i+1, k.Index)
		}
		if strings.ContainsAny(k.Project, "|} ") {
			return fmt.Errorf("keyring: key %d: a project name holds no '|', '}' or space", i+1)
		}
		if j, dup := s.byFP[k.Fingerprint]; dup {
			return fmt.Errorf("keyring: keys %d and %d have the same fingerprint", j+1, i+1)
		}
		s.byFP[k.Fingerprint] = i
		projects[k.Project] = struct{}{}
	}
	s.projects = len(projects)
	fps := slices.Sorted(maps.Keys(s.byFP))
	sum := sha256.Sum256([]byte(strings.Join(fps, ",")))
	s.digest = hex.EncodeToString(sum[:8])
	n := r.admin.names
	s.pickKeys = []string{n.rotation(), n.pause(), n.ring(), n.wait(), n.why(), n.parked(), n.members(),
		n.projKeys(), n.rpmLog(), "", n.set(s.digest), n.seen(), n.picks(), n.probe()}
	r.snap.Store(s)
	return nil
}

// Announce records this replica's keys in Redis (fingerprints, indexes and
// projects, never the keys): they join the pool, and keys that no live
// replica holds any more leave it. Pick calls it when Redis does not know
// this replica's set; call it at start to fail early.
func (r *Ring) Announce(ctx context.Context) error {
	s := r.snap.Load()
	return r.announce(ctx, s)
}

func (r *Ring) announce(ctx context.Context, s *snapshot) error {
	n := r.admin.names
	for range 10 {
		digests, err := r.admin.rdb.HVals(ctx, n.replicas()).Result()
		if err != nil {
			return fmt.Errorf("keyring: announce keys: %w", err)
		}
		day := r.opts.Now().In(pacific).Format("2006-01-02")
		keys := make([]string, 0, 18+len(digests)+len(s.keys)+2*s.projects)
		keys = append(keys, n.members(), n.ring(), n.wait(), n.why(), n.parked(), n.projKeys(), n.order(),
			n.disabled(), n.projUntil(), n.replicas(), n.seen(), n.rotation(), n.probe(), n.probeN(), n.picks(),
			n.keyUntil(), n.rpd(day), n.set(s.digest))
		var others []any
		seen := map[string]bool{s.digest: true}
		for _, d := range digests {
			if !seen[d] {
				seen[d] = true
				keys = append(keys, n.set(d))
				others = append(others, d)
			}
		}
		for _, k := range s.keys {
			keys = append(keys, n.key(k.Fingerprint))
		}
		pnum := make(map[string]int, s.projects)
		var projects []string
		for _, k := range s.keys {
			if _, ok := pnum[k.Project]; !ok {
				projects = append(projects, k.Project)
				pnum[k.Project] = len(projects)
			}
		}
		for _, p := range projects {
			keys = append(keys, n.project(p))
		}
		for _, p := range projects {
			keys = append(keys, n.legacyRPD(p, day))
		}
		args := make([]any, 0, 6+3*len(s.keys)+len(others))
		args = append(args, r.id, s.digest, liveFor.Milliseconds(), len(s.keys), len(others), len(projects))
		for _, k := range s.keys {
			args = append(args, k.Fingerprint, strconv.Itoa(k.Index)+"|"+k.Project, pnum[k.Project])
		}
		args = append(args, others...)
		res, err := announceScript.Run(ctx, r.admin.rdb, keys, args...).Int64Slice()
		if err != nil {
			return fmt.Errorf("keyring: announce keys: %w", err)
		}
		if len(res) == 2 {
			s.announced.Store(true)
			r.beat.Store(time.Now().UnixMilli())
			return nil
		}
	}
	return errors.New("keyring: announce keys: the set of replicas kept changing")
}

// Keys returns the keys of the ring in their configured order.
func (r *Ring) Keys() []Key { return append([]Key(nil), r.snap.Load().keys...) }

// Len is the number of keys.
func (r *Ring) Len() int { return len(r.snap.Load().keys) }

// Projects is the number of distinct projects.
func (r *Ring) Projects() int { return r.snap.Load().projects }

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
// round trip, and counts the call against its project's budgets: the key,
// among those this replica holds, that the fleet picked least recently.
// Keys in skip are passed over while any other key is usable. When no key
// is usable it returns a *NoKeyError. The round trip's size and Redis's
// work do not grow with the pool (O(log n)).
func (r *Ring) Pick(ctx context.Context, skip *Skip) (Key, error) {
	s := r.snap.Load()
	if !s.announced.Load() {
		if err := r.announce(ctx, s); err != nil {
			return Key{}, err
		}
	}
	now := r.opts.Now()
	midnight := NextPacificMidnight(now)
	keys := slices.Clone(s.pickKeys)
	keys[9] = r.admin.names.rpd(now.In(pacific).Format("2006-01-02"))
	for try := 0; ; try++ {
		beat := ""
		if ms := time.Now().UnixMilli(); ms-r.beat.Load() >= beatEvery.Milliseconds() {
			r.beat.Store(ms)
			beat = r.id
		}
		args := make([]any, 0, 5+skip.Len())
		args = append(args, r.opts.RPM, r.opts.RPD, midnight.UnixMilli(), (time.Minute + r.opts.RPMMargin).Milliseconds(), beat)
		for fp := range skip.fingerprints() {
			args = append(args, fp)
		}
		fp, wait, extra, err := runPick(ctx, r.admin.rdb, keys, args)
		if err != nil {
			return Key{}, err
		}
		if fp != "" {
			i, ok := s.byFP[fp]
			if !ok {
				return Key{}, fmt.Errorf("keyring: pick: Redis gave key %s, which this replica does not hold", fp)
			}
			k := s.keys[i]
			k.lease = extra
			return k, nil
		}
		if wait == -2 && try == 0 {
			// Redis forgot this replica (it was idle past liveFor, or
			// Redis lost its data): announce, then pick again.
			if err := r.announce(ctx, s); err != nil {
				return Key{}, err
			}
			continue
		}
		if wait == -2 {
			return Key{}, fmt.Errorf("keyring: pick: Redis does not keep this replica's keys")
		}
		return Key{}, &NoKeyError{RetryAfter: time.Duration(wait) * time.Millisecond, Reason: extra}
	}
}

// runPick runs pick.lua and checks its reply: the picked fingerprint and
// its lease, or "" with the wait (ms, -1 never, -2 replica unknown) and
// the reason.
func runPick(ctx context.Context, rdb redis.UniversalClient, keys []string, args []any) (fp string, wait int64, extra string, err error) {
	res, err := pickScript.Run(ctx, rdb, keys, args...).Result()
	if err != nil {
		return "", 0, "", fmt.Errorf("keyring: pick: %w", err)
	}
	arr, ok := res.([]any)
	if !ok || len(arr) < 2 {
		return "", 0, "", fmt.Errorf("keyring: pick: unexpected reply %T", res)
	}
	fp, ok1 := arr[0].(string)
	wait, ok2 := arr[1].(int64)
	if !ok1 || !ok2 {
		return "", 0, "", fmt.Errorf("keyring: pick: unexpected reply %v", arr)
	}
	if len(arr) > 2 {
		extra, _ = arr[2].(string)
	}
	return fp, wait, extra, nil
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

// Pool is the pool's name (Options.Pool; keyq uses the model).
func (r *Ring) Pool() string { return r.admin.Pool() }
