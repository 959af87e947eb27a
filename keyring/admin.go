package keyring

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Admin is the pool as operators see and steer it, by fingerprint, from
// Redis alone: it needs no key, so the API can serve it.
type Admin struct {
	rdb   redis.UniversalClient
	names names
	opts  Options // RPM, RPD, RPMMargin and Now, for Summary
}

// NewAdmin opens the pool named by opts (Prefix and Pool) on rdb. Give it
// the workers' RPM, RPD and RPMMargin for Summary to show the budgets.
func NewAdmin(rdb redis.UniversalClient, opts Options) *Admin {
	opts.RPMMargin = cmp.Or(opts.RPMMargin, DefaultRPMMargin)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Admin{rdb: rdb, names: newNames(cmp.Or(opts.Prefix, DefaultPrefix), cmp.Or(opts.Pool, DefaultPool)), opts: opts}
}

type member struct {
	fingerprint, project string
	index                int
}

func parseMember(fp, v string) member {
	idx, project, _ := strings.Cut(v, "|")
	i, _ := strconv.Atoi(idx)
	return member{fingerprint: fp, project: project, index: i}
}

func (a *Admin) members(ctx context.Context) ([]member, error) {
	all, err := a.rdb.HGetAll(ctx, a.names.members()).Result()
	if err != nil {
		return nil, fmt.Errorf("keyring: members: %w", err)
	}
	out := make([]member, 0, len(all))
	for fp, v := range all {
		out = append(out, parseMember(fp, v))
	}
	sortMembers(out)
	return out, nil
}

func sortMembers(ms []member) {
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].index != ms[j].index {
			return ms[i].index < ms[j].index
		}
		return ms[i].fingerprint < ms[j].fingerprint
	})
}

func (a *Admin) state(ctx context.Context, op, fingerprint, reason string) error {
	n := a.names
	res, err := adminScript.Run(ctx, a.rdb, []string{n.key(fingerprint), n.ring(), n.wait(), n.why(), n.parked(),
		n.disabled(), n.probe(), n.probeN(), n.projUntil(), n.members(), n.keyUntil()}, op, fingerprint, reason).Int64()
	if err != nil {
		return fmt.Errorf("keyring: %s: %w", op, err)
	}
	if res == 0 {
		return ErrUnknownKey
	}
	return nil
}

// Disable takes the key out of rotation until Enable; it is not probed.
func (a *Admin) Disable(ctx context.Context, fingerprint, reason string) error {
	return a.state(ctx, "disable", fingerprint, reason)
}

// Enable puts a disabled or cooling key back into rotation and clears its
// strikes. Its project's cooldown, if any, still applies.
func (a *Admin) Enable(ctx context.Context, fingerprint string) error {
	return a.state(ctx, "enable", fingerprint, "")
}

// Statuses reports every key of the pool, in index order: state, until
// when, why, and its counts. Reads only; never a key. It reads every key
// (a pipeline of about 5 commands per key): at thousands of keys use Page
// and Summary.
func (a *Admin) Statuses(ctx context.Context) ([]Status, error) {
	ms, err := a.members(ctx)
	if err != nil {
		return nil, err
	}
	return a.statuses(ctx, ms)
}

// statuses reads the state of the given members in one pipeline.
func (a *Admin) statuses(ctx context.Context, ms []member) ([]Status, error) {
	n := a.names
	pipe := a.rdb.Pipeline()
	now := pipe.Time(ctx)
	pause := pipe.PTTL(ctx, n.pause())
	pauseWhy := pipe.Get(ctx, n.pause())
	kc := make([]keyCmds, len(ms))
	projs := map[string]*redis.SliceCmd{}
	for i, m := range ms {
		kc[i] = keyCmds{
			state: pipe.HGetAll(ctx, n.key(m.fingerprint)),
			wait:  pipe.ZScore(ctx, n.wait(), m.fingerprint),
			why:   pipe.HGet(ctx, n.why(), m.fingerprint),
			probe: pipe.ZScore(ctx, n.probe(), m.fingerprint),
			picks: pipe.HGet(ctx, n.picks(), m.fingerprint),
		}
		if projs[m.project] == nil {
			projs[m.project] = pipe.HMGet(ctx, n.project(m.project), "until", "reason")
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("keyring: statuses: %w", err)
	}
	nowMs := now.Val().UnixMilli()
	paused := pausedState{left: pause.Val(), why: pauseWhy.Val()}
	out := make([]Status, len(ms))
	for i, m := range ms {
		out[i] = statusOf(m, kc[i], projs[m.project].Val(), nowMs, paused)
	}
	return out, nil
}

// keyCmds are the reads of one key's state in a statuses pipeline.
type keyCmds struct {
	state *redis.MapStringStringCmd
	wait  *redis.FloatCmd
	why   *redis.StringCmd
	probe *redis.FloatCmd
	picks *redis.StringCmd
}

// pausedState is the whole pool's pause as statuses read it.
type pausedState struct {
	left time.Duration
	why  string
}

// statusOf is one key's status from what statuses read: its state hash,
// its wait, why and probe entries, its project's cooldown (pv: until and
// reason), and the pool's pause.
func statusOf(m member, kc keyCmds, pv []any, nowMs int64, paused pausedState) Status {
	k := kc.state.Val()
	st := Status{Index: m.index, Fingerprint: m.fingerprint, Project: m.project, State: StateReady, Failures: map[string]int64{}}
	st.Picks, _ = strconv.ParseInt(kc.picks.Val(), 10, 64)
	for f, v := range k {
		c, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case f == "successes":
			st.Successes = c
		case strings.HasPrefix(f, "fail:"):
			st.Failures[strings.TrimPrefix(f, "fail:")] = c
		}
	}
	projUntil, projWhy := int64(0), ""
	if len(pv) == 2 {
		if s, ok := pv[0].(string); ok {
			projUntil, _ = strconv.ParseInt(s, 10, 64)
		}
		projWhy, _ = pv[1].(string)
	}
	keyUntil, _ := strconv.ParseInt(k["until"], 10, 64)
	waitUntil := int64(kc.wait.Val())
	switch {
	case k["disabled"] != "":
		st.State, st.Reason = StateDisabled, k["disabled"]
		if kc.probe.Err() == nil {
			st.Until = msTime(int64(kc.probe.Val()))
		}
	case waitUntil > nowMs && kc.why.Val() == "rpm":
		st.State, st.Reason, st.Until = StateCooling, "project "+m.project+": at its per-minute budget (GEMINI_RPM)", msTime(waitUntil)
	case waitUntil > nowMs && kc.why.Val() == "rpd":
		st.State, st.Reason, st.Until = StateCooling, "project "+m.project+": at its daily budget (GEMINI_RPD)", msTime(waitUntil)
	case keyUntil > nowMs && keyUntil >= projUntil:
		st.State, st.Reason, st.Until = StateCooling, k["reason"], msTime(keyUntil)
	case projUntil > nowMs:
		st.State, st.Reason, st.Until = StateCooling, "project "+m.project+": "+projWhy, msTime(projUntil)
	case paused.left > 0:
		st.State, st.Reason, st.Until = StateCooling, "pool paused: "+paused.why, msTime(nowMs+paused.left.Milliseconds())
	}
	st.LastFailure = k["last_fail"]
	st.LastFailureAt = msField(k["last_fail_at"])
	st.LastUsedAt = msField(k["last_at"])
	return st
}

// msField reads a hash field of ms since the epoch; nil when unset.
func msField(v string) *time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return nil
	}
	return msTime(ms)
}

// CallsPerMinute returns, for each project, the calls reported in each of
// the last 60 minutes, oldest first (Redis's clock).
func (a *Admin) CallsPerMinute(ctx context.Context, projects []string) (map[string][]int, error) {
	now, err := a.rdb.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("keyring: calls per minute: %w", err)
	}
	minute := now.UnixMilli() / 60000
	pipe := a.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(projects))
	for i, p := range projects {
		fields := make([]string, 60)
		for j := range fields {
			fields[j] = strconv.FormatInt(minute-59+int64(j), 10) + "|" + p
		}
		cmds[i] = pipe.HMGet(ctx, a.names.callsMin(), fields...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("keyring: calls per minute: %w", err)
	}
	out := make(map[string][]int, len(projects))
	for i, p := range projects {
		counts := make([]int, 60)
		for j, v := range cmds[i].Val() {
			if s, ok := v.(string); ok {
				counts[j], _ = strconv.Atoi(s)
			}
		}
		out[p] = counts
	}
	return out, nil
}

func msTime(ms int64) *time.Time {
	t := time.UnixMilli(ms).UTC()
	return &t
}

// Pool is the pool's name (Options.Pool; keyq uses the model).
func (a *Admin) Pool() string { return cmp.Or(a.opts.Pool, DefaultPool) }
