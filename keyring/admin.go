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
}

// NewAdmin opens the pool named by opts (Prefix and Pool) on rdb.
func NewAdmin(rdb redis.UniversalClient, opts Options) *Admin {
	return &Admin{rdb: rdb, names: newNames(cmp.Or(opts.Prefix, DefaultPrefix), cmp.Or(opts.Pool, DefaultPool))}
}

type member struct {
	fingerprint, project string
	index                int
}

func (a *Admin) members(ctx context.Context) ([]member, error) {
	all, err := a.rdb.HGetAll(ctx, a.names.members()).Result()
	if err != nil {
		return nil, fmt.Errorf("keyring: members: %w", err)
	}
	out := make([]member, 0, len(all))
	for fp, v := range all {
		idx, project, _ := strings.Cut(v, "|")
		i, _ := strconv.Atoi(idx)
		out = append(out, member{fingerprint: fp, project: project, index: i})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out, nil
}

func (a *Admin) known(ctx context.Context, fingerprint string) error {
	ok, err := a.rdb.HExists(ctx, a.names.members(), fingerprint).Result()
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if !ok {
		return ErrUnknownKey
	}
	return nil
}

// Disable takes the key out of rotation until Enable; it is not probed.
func (a *Admin) Disable(ctx context.Context, fingerprint, reason string) error {
	if err := a.known(ctx, fingerprint); err != nil {
		return err
	}
	return a.rdb.HSet(ctx, a.names.key(fingerprint), "disabled", reason, "disabled_at", time.Now().UnixMilli()).Err()
}

// Enable puts a disabled or cooling key back into rotation and clears its
// strikes. Its project's cooldown, if any, still applies.
func (a *Admin) Enable(ctx context.Context, fingerprint string) error {
	if err := a.known(ctx, fingerprint); err != nil {
		return err
	}
	return a.rdb.HDel(ctx, a.names.key(fingerprint), "disabled", "disabled_at", "probe_at", "probe_n", "strikes", "until", "reason").Err()
}

// Statuses reports every announced key: state, until when, why, and its
// counts. Reads only; never a key.
func (a *Admin) Statuses(ctx context.Context) ([]Status, error) {
	ms, err := a.members(ctx)
	if err != nil {
		return nil, err
	}
	pipe := a.rdb.Pipeline()
	now := pipe.Time(ctx)
	pause := pipe.PTTL(ctx, a.names.pause())
	pauseWhy := pipe.Get(ctx, a.names.pause())
	keyState := make([]*redis.MapStringStringCmd, len(ms))
	projState := make([]*redis.MapStringStringCmd, len(ms))
	for i, m := range ms {
		keyState[i] = pipe.HGetAll(ctx, a.names.key(m.fingerprint))
		projState[i] = pipe.HGetAll(ctx, a.names.project(m.project))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("keyring: statuses: %w", err)
	}
	nowMs := now.Val().UnixMilli()
	out := make([]Status, len(ms))
	for i, m := range ms {
		k, p := keyState[i].Val(), projState[i].Val()
		st := Status{Index: m.index, Fingerprint: m.fingerprint, Project: m.project, State: StateReady, Failures: map[string]int64{}}
		for f, v := range k {
			n, _ := strconv.ParseInt(v, 10, 64)
			switch {
			case f == "picks":
				st.Picks = n
			case f == "successes":
				st.Successes = n
			case strings.HasPrefix(f, "fail:"):
				st.Failures[strings.TrimPrefix(f, "fail:")] = n
			}
		}
		keyUntil, _ := strconv.ParseInt(k["until"], 10, 64)
		projUntil, _ := strconv.ParseInt(p["until"], 10, 64)
		switch {
		case k["disabled"] != "":
			st.State, st.Reason = StateDisabled, k["disabled"]
			if at, err := strconv.ParseInt(k["probe_at"], 10, 64); err == nil {
				st.Until = msTime(at)
			}
		case keyUntil > nowMs:
			st.State, st.Reason, st.Until = StateCooling, k["reason"], msTime(keyUntil)
		case projUntil > nowMs:
			st.State, st.Reason, st.Until = StateCooling, "project "+m.project+": "+p["reason"], msTime(projUntil)
		case pause.Val() > 0:
			st.State, st.Reason, st.Until = StateCooling, "pool paused: "+pauseWhy.Val(), msTime(nowMs+pause.Val().Milliseconds())
		}
		out[i] = st
	}
	return out, nil
}

func msTime(ms int64) *time.Time {
	t := time.UnixMilli(ms).UTC()
	return &t
}
