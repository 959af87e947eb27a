package keyring_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
)

func labeled(t *testing.T, list string) []keyring.Key {
	t.Helper()
	keys, _, err := keyring.ParseKeys(list)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func newRing(t *testing.T, rdb *redis.Client, keys []keyring.Key, opts keyring.Options) *keyring.Ring {
	t.Helper()
	r, err := keyring.New(rdb, keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Announce(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// picks makes n picks and returns the names of the keys, or "wait".
func picks(t *testing.T, r *keyring.Ring, n int) []string {
	t.Helper()
	var out []string
	for range n {
		k, err := r.Pick(context.Background(), nil)
		var nk *keyring.NoKeyError
		switch {
		case errors.As(err, &nk):
			out = append(out, "wait")
		case err != nil:
			t.Fatal(err)
		default:
			out = append(out, k.Name())
		}
	}
	return out
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestParseProjectLabels(t *testing.T) {
	keys := labeled(t, "team-a:k1, team-a:k2 ,team-b:k3,k4")
	want := []string{"team-a", "team-a", "team-b", "key-" + keys[3].Fingerprint}
	for i, k := range keys {
		if k.Project != want[i] {
			t.Errorf("key %d project %q, want %q", i+1, k.Project, want[i])
		}
	}
	for _, bad := range []string{":k1", "team a:k1", "team-a:"} {
		if _, _, err := keyring.ParseKeys(bad); err == nil {
			t.Errorf("ParseKeys(%q): want an error", bad)
		}
	}
}

// A cooldown reported by one replica holds at the next pick of another:
// the project's keys are passed over until it ends by itself.
func TestProjectCooldownIsSharedAndEnds(t *testing.T) {
	rdb, url := redistest.Open(t)
	keys := labeled(t, "a:k1,a:k2,b:k3")
	one := newRing(t, rdb, keys, keyring.Options{})
	opt, _ := redis.ParseURL(url)
	other := redis.NewClient(opt)
	t.Cleanup(func() { other.Close() })
	two := newRing(t, other, keys, keyring.Options{})

	c, err := one.Report(context.Background(), keys[0], keyring.Outcome{Kind: keyring.CoolProject, Class: "rate_limited", For: 300 * time.Millisecond, Reason: "429 PerMinute"})
	if err != nil || c.State != keyring.StateCooling {
		t.Fatalf("report: %+v %v", c, err)
	}
	if got := picks(t, two, 4); strings.Join(got, " ") != "#3 #3 #3 #3" {
		t.Errorf("while project a cools, the other replica picked %v, want only #3", got)
	}
	testutil.Eventually(t, 5*time.Second, "project a's cooldown to end", func() bool {
		return has(picks(t, two, 3), "#1")
	})
}

func TestNoKeyErrorSaysWhenTheFirstIsBack(t *testing.T) {
	rdb, _ := redistest.Open(t)
	keys := labeled(t, "a:k1,b:k2")
	r := newRing(t, rdb, keys, keyring.Options{})
	ctx := context.Background()
	r.Report(ctx, keys[0], keyring.Outcome{Kind: keyring.CoolProject, Class: "rate_limited", For: 30 * time.Second})
	r.Report(ctx, keys[1], keyring.Outcome{Kind: keyring.CoolKey, Class: "billing", For: 10 * time.Second})
	_, err := r.Pick(ctx, nil)
	var nk *keyring.NoKeyError
	if !errors.As(err, &nk) || nk.RetryAfter <= 9*time.Second || nk.RetryAfter > 10*time.Second {
		t.Fatalf("Pick = %v, want a NoKeyError with RetryAfter about 10s", err)
	}
	// Disabled for good: no wait can help.
	r.Report(ctx, keys[0], keyring.Outcome{Kind: keyring.Disable, Class: "permission_denied"})
	r.Report(ctx, keys[1], keyring.Outcome{Kind: keyring.Disable, Class: "permission_denied"})
	if _, err := r.Pick(ctx, nil); !errors.As(err, &nk) || nk.RetryAfter >= 0 {
		t.Errorf("Pick with every key disabled = %v, want RetryAfter < 0", err)
	}
}

func TestSuspectKeyIsDisabledThenProbedBack(t *testing.T) {
	rdb, _ := redistest.Open(t)
	keys := labeled(t, "k1,k2")
	r := newRing(t, rdb, keys, keyring.Options{ProbeFirst: 100 * time.Millisecond})
	ctx := context.Background()
	bad := keyring.Outcome{Kind: keyring.Suspect, Class: "key_invalid", For: 50 * time.Millisecond, Probe: true, Reason: "400 API_KEY_INVALID"}
	if c, _ := r.Report(ctx, keys[0], bad); c.State != keyring.StateCooling {
		t.Fatalf("first API_KEY_INVALID: %+v, want cooling", c)
	}
	if c, _ := r.Report(ctx, keys[0], bad); c.State != keyring.StateDisabled {
		t.Fatalf("second API_KEY_INVALID: %+v, want disabled", c)
	}
	if got := picks(t, r, 4); has(got, "#1") {
		t.Errorf("disabled #1 was picked: %v", got)
	}
	if due, err := r.DueProbes(ctx); err != nil || len(due) != 0 {
		t.Errorf("probes due at once: %v %v", due, err)
	}
	var due []keyring.Key
	testutil.Eventually(t, 5*time.Second, "a probe of #1 to fall due", func() bool {
		var err error
		due, err = r.DueProbes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(due) == 1
	})
	if due[0].Name() != "#1" {
		t.Fatalf("due %v", due)
	}
	// Claimed: another replica asking now gets nothing.
	if again, _ := r.DueProbes(ctx); len(again) != 0 {
		t.Errorf("a claimed probe was handed out twice: %v", again)
	}
	if err := r.Enable(ctx, due[0].Fingerprint); err != nil {
		t.Fatal(err)
	}
	if got := picks(t, r, 4); !has(got, "#1") {
		t.Errorf("#1 not back after a good probe: %v", got)
	}
}

func TestStormPausesThePoolAndDisablesNothing(t *testing.T) {
	rdb, _ := redistest.Open(t)
	keys := labeled(t, "a:k1,b:k2,c:k3,d:k4")
	r := newRing(t, rdb, keys, keyring.Options{PoolPause: 400 * time.Millisecond})
	ctx := context.Background()
	var last keyring.Change
	for _, k := range keys[:3] {
		c, err := r.Report(ctx, k, keyring.Outcome{Kind: keyring.CoolProject, Class: "rate_limited", For: 50 * time.Millisecond, Grow: true, Reason: "429"})
		if err != nil {
			t.Fatal(err)
		}
		last = c
	}
	if last.State != "paused" {
		t.Fatalf("3 of 4 projects answered 429: change %+v, want paused", last)
	}
	_, err := r.Pick(ctx, nil)
	var nk *keyring.NoKeyError
	if !errors.As(err, &nk) || !strings.Contains(nk.Reason, "paused") {
		t.Fatalf("Pick during the pause = %v, want a NoKeyError", err)
	}
	st, err := r.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.State == keyring.StateDisabled {
			t.Errorf("a 429 storm disabled %+v", s)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the pause to end by itself", func() bool {
		return has(picks(t, r, 1), "#4")
	})
}

func TestRepeated429WithoutDetailsCoolsLonger(t *testing.T) {
	rdb, _ := redistest.Open(t)
	keys := labeled(t, "a:k1,b:k2,c:k3")
	r := newRing(t, rdb, keys, keyring.Options{})
	ctx := context.Background()
	var lengths []time.Duration
	for range 3 {
		start := time.Now()
		c, err := r.Report(ctx, keys[0], keyring.Outcome{Kind: keyring.CoolProject, Class: "rate_limited", For: time.Second, Grow: true})
		if err != nil {
			t.Fatal(err)
		}
		lengths = append(lengths, c.Until.Sub(start))
	}
	if !(lengths[0] < 1500*time.Millisecond && lengths[1] > 1900*time.Millisecond && lengths[2] > 3900*time.Millisecond) {
		t.Errorf("cooldowns %v, want about 1s, 2s, 4s", lengths)
	}
}

func TestBudgetsHoldAcrossReplicas(t *testing.T) {
	rdb, url := redistest.Open(t)
	keys := labeled(t, "a:k1,a:k2,b:k3")
	opt, _ := redis.ParseURL(url)
	other := redis.NewClient(opt)
	t.Cleanup(func() { other.Close() })
	one := newRing(t, rdb, keys, keyring.Options{RPM: 3})
	two := newRing(t, other, keys, keyring.Options{RPM: 3})
	got := append(picks(t, one, 4), picks(t, two, 4)...)
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	// Project a (#1, #2) and b (#3) get 3 calls each a minute, however the
	// calls are spread over replicas and keys.
	if count["#1"]+count["#2"] != 3 || count["#3"] != 3 || count["wait"] != 2 {
		t.Errorf("picks %v (%v), want 3 for project a, 3 for b, then waits", got, count)
	}
	_, err := one.Pick(context.Background(), nil)
	var nk *keyring.NoKeyError
	if !errors.As(err, &nk) || nk.RetryAfter < 55*time.Second || !strings.Contains(nk.Reason, "GEMINI_RPM") {
		t.Errorf("over budget: %v, want a wait of about a minute naming GEMINI_RPM", err)
	}

	day := newRing(t, rdb, labeled(t, "z:k9"), keyring.Options{Pool: "daily", RPD: 2})
	if got := picks(t, day, 3); strings.Join(got, " ") != "#1 #1 wait" {
		t.Errorf("RPD 2: picks %v", got)
	}
	_, err = day.Pick(context.Background(), nil)
	if !errors.As(err, &nk) || nk.RetryAfter > 24*time.Hour || !strings.Contains(nk.Reason, "GEMINI_RPD") {
		t.Errorf("over the daily budget: %v, want a wait until Pacific midnight", err)
	}
}

func TestStatusesAndAdmin(t *testing.T) {
	rdb, _ := redistest.Open(t)
	keys := labeled(t, "a:k1,k2,k3")
	r := newRing(t, rdb, keys, keyring.Options{})
	ctx := context.Background()
	picks(t, r, 3)
	r.Report(ctx, keys[0], keyring.Outcome{Kind: keyring.Success})
	r.Report(ctx, keys[1], keyring.Outcome{Kind: keyring.NoFault, Class: "unavailable"})
	r.Report(ctx, keys[1], keyring.Outcome{Kind: keyring.CoolKey, Class: "billing", For: time.Hour, Reason: "402"})
	admin := keyring.NewAdmin(rdb, keyring.Options{}) // as the API opens it: no keys
	if err := admin.Disable(ctx, keys[2].Fingerprint, "by hand"); err != nil {
		t.Fatal(err)
	}
	if err := admin.Disable(ctx, "000000000000", "x"); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("unknown fingerprint: %v", err)
	}
	st, err := admin.Statuses(ctx)
	if err != nil || len(st) != 3 {
		t.Fatalf("Statuses = %+v, %v", st, err)
	}
	if s := st[0]; s.Index != 1 || s.Project != "a" || s.State != keyring.StateReady || s.Picks != 1 || s.Successes != 1 {
		t.Errorf("#1 = %+v", s)
	}
	if s := st[1]; s.State != keyring.StateCooling || s.Reason != "402" || s.Until == nil || s.Failures["unavailable"] != 1 || s.Failures["billing"] != 1 {
		t.Errorf("#2 = %+v", s)
	}
	if s := st[2]; s.State != keyring.StateDisabled || s.Reason != "by hand" {
		t.Errorf("#3 = %+v", s)
	}
	if got := picks(t, r, 3); has(got, "#3") || has(got, "#2") {
		t.Errorf("picks %v include a disabled or cooling key", got)
	}
	if err := admin.Enable(ctx, keys[2].Fingerprint); err != nil {
		t.Fatal(err)
	}
	if got := picks(t, r, 2); !has(got, "#3") {
		t.Errorf("#3 not back after Enable: %v", got)
	}
}

// A reload that reorders the keys and drops one keeps each key's state.
func TestReloadKeepsStateByFingerprint(t *testing.T) {
	rdb, _ := redistest.Open(t)
	ctx := context.Background()
	keys := labeled(t, "k1,k2,k3")
	r := newRing(t, rdb, keys, keyring.Options{})
	r.Report(ctx, keys[1], keyring.Outcome{Kind: keyring.Disable, Class: "permission_denied", Reason: "403 leaked"})
	reloaded := labeled(t, "k2,k3,k4")
	if err := r.SetKeys(ctx, reloaded); err != nil {
		t.Fatal(err)
	}
	if got := picks(t, r, 6); has(got, "#1") || !has(got, "#2") || !has(got, "#3") {
		t.Errorf("after reload (k2 first, disabled) picks %v: want #2 and #3 only", got)
	}
	st, _ := r.Statuses(ctx)
	if len(st) != 3 || st[0].Fingerprint != keys[1].Fingerprint || st[0].State != keyring.StateDisabled {
		t.Errorf("statuses after reload %+v", st)
	}
}
