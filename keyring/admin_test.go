package keyring_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/keyring"
)

func TestNextPacificMidnight(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ now, want string }{
		{"2026-11-28T12:00:00Z", "2026-11-29T08:00:00Z"}, // 04:00 PST
		{"2026-11-29T07:59:59Z", "2026-11-29T08:00:00Z"}, // 23:59:59 PST
		{"2026-11-29T08:00:00Z", "2026-11-30T08:00:00Z"}, // midnight itself: the next one
		{"2026-03-08T12:00:00Z", "2026-03-09T07:00:00Z"}, // the day clocks go forward: midnight PDT
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		got := keyring.NextPacificMidnight(now)
		if want, _ := time.Parse(time.RFC3339, tc.want); !got.Equal(want) {
			t.Errorf("NextPacificMidnight(%s) = %s, want %s", tc.now, got.UTC().Format(time.RFC3339), tc.want)
		}
		if h, m, s := got.In(la).Clock(); h+m+s != 0 {
			t.Errorf("NextPacificMidnight(%s) = %s, not a Pacific midnight", tc.now, got.In(la))
		}
	}
}

// Pages in index order cover every key once; filters by state and project
// keep only theirs.
func TestAdminPages(t *testing.T) {
	rdb, _ := redistest.Open(t)
	ctx := context.Background()
	keys := bigKeys(t, 25, 5) // 5 projects of 5 keys
	r := newRing(t, rdb, keys, keyring.Options{})
	if _, err := r.Report(ctx, keys[7], keyring.Outcome{Kind: keyring.CoolProject, Class: "rate_limited", For: time.Hour, Reason: "429"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Disable(ctx, keys[20].Fingerprint, "by hand"); err != nil {
		t.Fatal(err)
	}
	a := keyring.NewAdmin(rdb, keyring.Options{})
	var all []keyring.Status
	q := keyring.Query{Limit: 10}
	for {
		p, err := a.Page(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Keys...)
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if len(all) != 25 {
		t.Fatalf("pages hold %d keys, want 25", len(all))
	}
	for i, s := range all {
		if s.Index != i+1 {
			t.Fatalf("page entry %d is key #%d, want index order", i, s.Index)
		}
	}
	cooling, err := a.Page(ctx, keyring.Query{State: keyring.StateCooling})
	if err != nil || len(cooling.Keys) != 5 {
		t.Fatalf("cooling page: %d keys, %v; want project p00001's 5", len(cooling.Keys), err)
	}
	for _, s := range cooling.Keys {
		if s.Project != keys[7].Project || s.State != keyring.StateCooling {
			t.Errorf("cooling page holds %+v", s)
		}
	}
	p4, err := a.Page(ctx, keyring.Query{Project: keys[20].Project, State: keyring.StateReady})
	if err != nil || len(p4.Keys) != 4 {
		t.Fatalf("project %s, ready: %d keys, %v; want 4 (one disabled)", keys[20].Project, len(p4.Keys), err)
	}
	sum, err := a.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Keys != 25 || sum.States[keyring.StateCooling] != 5 || sum.States[keyring.StateDisabled] != 1 || len(sum.Projects) != 5 {
		t.Errorf("summary %+v", sum)
	}
	if ps := sum.Projects[1]; ps.CoolingUntil == nil || ps.States[keyring.StateCooling] != 5 || ps.DayResets.IsZero() {
		t.Errorf("project p00001 in the summary: %+v", ps)
	}
}

// State written by the keyring before issue 11 (in each key's and
// project's hash, and the old per-project day counters) holds after an
// upgrade: a disabled key stays disabled, cooldowns and today's calls
// carry over, pick counts too.
func TestUpgradeKeepsTheOldLayoutsState(t *testing.T) {
	rdb, _ := redistest.Open(t)
	ctx := context.Background()
	keys := labeled(t, "k1,k2,c:k3,d:k4,k5")
	now := time.Now()
	later := now.Add(time.Hour).UnixMilli()
	day := now.In(mustLA(t)).Format("2006-01-02")
	base := "keyq:{gemini}:"
	rdb.HSet(ctx, base+"key:"+keys[0].Fingerprint, "disabled", "403 leaked", "disabled_at", now.UnixMilli(), "picks", 7)
	rdb.HSet(ctx, base+"key:"+keys[1].Fingerprint, "until", later, "reason", "402")
	rdb.HSet(ctx, base+"proj:c", "until", later, "reason", "429 PerDay")
	rdb.Set(ctx, base+"proj:d:rpd:"+day, 2, time.Hour)
	r := newRing(t, rdb, keys, keyring.Options{RPD: 3})
	got := picks(t, r, 6)
	for _, bad := range []string{"#1", "#2", "#3"} {
		if has(got, bad) {
			t.Errorf("after the upgrade, %s (disabled or cooling in the old layout) was picked: %v", bad, got)
		}
	}
	n4 := 0
	for _, g := range got {
		if g == "#4" {
			n4++
		}
	}
	if n4 != 1 {
		t.Errorf("project d had 2 of its 3 calls today before the upgrade; after it got %d more (%v)", n4, got)
	}
	st, err := r.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State != keyring.StateDisabled || st[0].Picks != 7 || st[1].State != keyring.StateCooling || st[2].State != keyring.StateCooling {
		t.Errorf("statuses after the upgrade: %+v", st[:3])
	}
}

func mustLA(t *testing.T) *time.Location {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	return la
}

// What operators see of recent use: a key's last failure and last use, and
// each project's calls a minute over the last hour.
func TestLastUseAndCallsPerMinute(t *testing.T) {
	rdb, _ := redistest.Open(t)
	keys := labeled(t, "a:k1,a:k2,b:k3")
	r := newRing(t, rdb, keys, keyring.Options{})
	ctx := context.Background()
	before := time.Now().Add(-time.Second)
	for range 3 {
		if _, err := r.Report(ctx, keys[0], keyring.Outcome{Kind: keyring.Success}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Report(ctx, keys[1], keyring.Outcome{Kind: keyring.NoFault, Class: "unavailable"}); err != nil {
		t.Fatal(err)
	}
	st, err := r.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := st[0]; s.LastUsedAt == nil || s.LastUsedAt.Before(before) || s.LastFailure != "" || s.LastFailureAt != nil {
		t.Errorf("#1 %+v: want used, never failed", s)
	}
	if s := st[1]; s.LastFailure != "unavailable" || s.LastFailureAt == nil || s.LastUsedAt == nil {
		t.Errorf("#2 %+v: want last failure unavailable", s)
	}
	if s := st[2]; s.LastUsedAt != nil {
		t.Errorf("#3 %+v: never used", s)
	}
	calls, err := r.Admin().CallsPerMinute(ctx, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	sum := func(c []int) (n int) {
		for _, v := range c {
			n += v
		}
		return n
	}
	if len(calls["a"]) != 60 || sum(calls["a"]) != 4 || sum(calls["b"]) != 0 {
		t.Errorf("calls a minute: a %v, b %v; want 4 calls of project a in the last hour", calls["a"], calls["b"])
	}
}
