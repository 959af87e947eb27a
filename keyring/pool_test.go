package keyring_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
)

// bigKeys makes n keys, perProject to a project ("p0001:...").
func bigKeys(t *testing.T, n, perProject int) []keyring.Key {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "p%05d:test-key-%d,", i/perProject, i)
	}
	keys, _, err := keyring.ParseKeys(b.String())
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// parallel runs f(0..n-1) on 8 goroutines.
func parallel(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// pickAll makes n picks on 8 goroutines and counts them by fingerprint;
// any error fails the test.
func pickAll(t *testing.T, r *keyring.Ring, n int) map[string]int {
	t.Helper()
	var mu sync.Mutex
	var failed atomic.Bool
	count := map[string]int{}
	parallel(n, func(int) {
		k, err := r.Pick(context.Background(), nil)
		if err != nil {
			if !failed.Swap(true) {
				t.Error(err)
			}
			return
		}
		mu.Lock()
		count[k.Fingerprint]++
		mu.Unlock()
	})
	return count
}

// 10,000 keys: a round of 10,000 picks on 8 goroutines gives every key
// exactly one; 99% of them cooling, the 1% left are found and share the
// picks evenly; a short cooldown ends by itself; a reload in another
// order keeps every key's state.
func TestLargePoolRotationAndCooling(t *testing.T) {
	rdb, _ := redistest.Open(t)
	ctx := context.Background()
	keys := bigKeys(t, 10000, 2)
	r := newRing(t, rdb, keys, keyring.Options{})
	count := pickAll(t, r, len(keys))
	if len(count) != len(keys) {
		t.Fatalf("a round of %d picks reached %d keys, want every key once", len(keys), len(count))
	}
	for fp, c := range count {
		if c != 1 {
			t.Fatalf("key %s picked %d times in one round", fp, c)
		}
	}

	// Keys 0..9799 cool for an hour, 9800..9899 for a moment, 9900..9999
	// stay ready. (Key cooldowns: project cooldowns of most projects at
	// once would pause the pool as a 429 storm.)
	parallel(9900, func(i int) {
		o := keyring.Outcome{Kind: keyring.CoolKey, Class: "billing", For: time.Hour, Reason: "402"}
		if i >= 9800 {
			o.For = 200 * time.Millisecond
		}
		if _, err := r.Report(ctx, keys[i], o); err != nil {
			t.Error(err)
		}
	})
	hour := map[string]bool{}
	for _, k := range keys[:9800] {
		hour[k.Fingerprint] = true
	}
	ready := map[string]bool{}
	for _, k := range keys[9900:] {
		ready[k.Fingerprint] = true
	}
	count = pickAll(t, r, 300)
	fromReady := 0
	for fp, c := range count {
		if hour[fp] {
			t.Fatalf("key %s, cooling for an hour, was picked", fp)
		}
		if ready[fp] {
			fromReady += c
		}
	}
	for fp := range ready {
		// The 100 ready keys (and perhaps the 100 back from their
		// moment) share 300 picks: each ready key gets 1 to 3.
		if c := count[fp]; c < 1 || c > 3 {
			t.Errorf("ready key %s picked %d times of 300 among at most 200 usable keys", fp, c)
		}
	}
	back := keys[9800].Fingerprint
	testutil.Eventually(t, 5*time.Second, "a key's 200ms cooldown to end by itself", func() bool {
		return pickAll(t, r, 100)[back] > 0
	})

	// A reload in reverse order keeps each key's state.
	var list strings.Builder
	for i := range keys {
		fmt.Fprintf(&list, "p%05d:test-key-%d,", (len(keys)-1-i)/2, len(keys)-1-i)
	}
	rev, _, err := keyring.ParseKeys(list.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetKeys(ctx, rev); err != nil {
		t.Fatal(err)
	}
	for fp := range pickAll(t, r, 200) {
		if hour[fp] {
			t.Fatalf("after a reload, key %s (cooling for an hour) was picked", fp)
		}
	}
	page, err := r.Admin().Page(ctx, keyring.Query{State: keyring.StateCooling, Limit: 50})
	if err != nil || len(page.Keys) != 50 || page.Next == "" {
		t.Fatalf("Page(cooling, 50) = %d keys, next %q, %v", len(page.Keys), page.Next, err)
	}
	for _, s := range page.Keys {
		if s.State != keyring.StateCooling || s.Reason != "402" || s.Until == nil {
			t.Errorf("cooling page holds %+v", s)
		}
	}
	sum, err := r.Admin().Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Keys != 10000 || len(sum.Projects) != 5000 || sum.States[keyring.StateCooling] < 9800 || sum.States[keyring.StateCooling]+sum.States[keyring.StateReady] != 10000 {
		t.Errorf("summary: %d keys, %d projects, states %v", sum.Keys, len(sum.Projects), sum.States)
	}
}

// Budgets are exact at 10,000 keys in 5,000 projects, across two replicas:
// every project gets exactly RPM calls, then the pool says why it waits.
func TestLargePoolBudgetsAreExact(t *testing.T) {
	rdb, url := redistest.Open(t)
	keys := bigKeys(t, 10000, 2)
	opt, _ := redis.ParseURL(url)
	other := redis.NewClient(opt)
	t.Cleanup(func() { other.Close() })
	const rpm, rpd = 1, 2
	one := newRing(t, rdb, keys, keyring.Options{RPM: rpm, RPD: rpd})
	two := newRing(t, other, keys, keyring.Options{RPM: rpm, RPD: rpd})
	project := map[string]string{}
	for _, k := range keys {
		project[k.Fingerprint] = k.Project
	}
	var mu sync.Mutex
	calls := map[string]int{}
	parallel(5000*rpm, func(i int) {
		r := one
		if i%2 == 1 {
			r = two
		}
		k, err := r.Pick(context.Background(), nil)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		calls[project[k.Fingerprint]]++
		mu.Unlock()
	})
	if len(calls) != 5000 {
		t.Errorf("%d projects had calls, want all 5000", len(calls))
	}
	for p, c := range calls {
		if c != rpm {
			t.Fatalf("project %s: %d calls in the minute, want exactly RPM %d", p, c, rpm)
		}
	}
	_, err := two.Pick(context.Background(), nil)
	var nk *keyring.NoKeyError
	if !errors.As(err, &nk) || !strings.Contains(nk.Reason, "GEMINI_RPM") || nk.RetryAfter < 50*time.Second {
		t.Fatalf("pick over every project's budget: %v, want a wait of about a minute naming GEMINI_RPM", err)
	}
	sum, err := one.Admin().Summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range sum.Projects[:3] {
		if ps.CallsThisMinute != rpm || ps.CallsToday != rpm {
			t.Errorf("summary of %s: %d calls this minute, %d today; want %d", ps.Project, ps.CallsThisMinute, ps.CallsToday, rpm)
		}
	}
}

// 200 keys disabled together with probes are probed a bounded batch at a
// time, each once.
func TestProbesOfManyKeysAreSpreadInBatches(t *testing.T) {
	rdb, _ := redistest.Open(t)
	ctx := context.Background()
	keys := bigKeys(t, 200, 200) // one project
	r := newRing(t, rdb, keys, keyring.Options{ProbeFirst: 50 * time.Millisecond})
	c, err := r.Report(ctx, keys[0], keyring.Outcome{Kind: keyring.DisableProject, Class: "permission_denied", Probe: true, Reason: "403 CONSUMER_SUSPENDED"})
	if err != nil || c.State != keyring.StateDisabled {
		t.Fatalf("report: %+v %v", c, err)
	}
	if _, err := r.Pick(ctx, nil); err == nil {
		t.Fatal("a pick found a key of a disabled project")
	}
	probed := map[string]int{}
	testutil.Eventually(t, 10*time.Second, "every disabled key to be probed", func() bool {
		due, err := r.DueProbes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) > keyring.DefaultProbeBatch {
			t.Fatalf("one DueProbes claimed %d keys, more than a batch of %d", len(due), keyring.DefaultProbeBatch)
		}
		for _, k := range due {
			probed[k.Fingerprint]++
		}
		return len(probed) == len(keys)
	})
	for fp, n := range probed {
		if n > 2 {
			t.Errorf("key %s probed %d times while others waited for their first", fp, n)
		}
	}
}

// replicas opens rings for several replicas of one pool on their own
// clients, each holding its own list of keys.
func replicas(t *testing.T, url string, lists ...[]keyring.Key) []*keyring.Ring {
	t.Helper()
	var out []*keyring.Ring
	for _, keys := range lists {
		opt, _ := redis.ParseURL(url)
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		out = append(out, newRing(t, c, keys, keyring.Options{}))
	}
	return out
}

// pickRoundRobin makes n picks, replica after replica, and counts them by
// key name (index in the first replica's list).
func pickRoundRobin(t *testing.T, rs []*keyring.Ring, n int) map[string]int {
	t.Helper()
	name := map[string]string{}
	for _, k := range rs[0].Keys() {
		name[k.Fingerprint] = k.Name()
	}
	count := map[string]int{}
	for i := range n {
		r := rs[i%len(rs)]
		k, err := r.Pick(context.Background(), nil)
		if err != nil {
			t.Fatalf("pick %d on replica %d: %v", i, i%len(rs), err)
		}
		held := false
		for _, h := range r.Keys() {
			held = held || h.Fingerprint == k.Fingerprint
		}
		if !held {
			t.Fatalf("replica %d was given key %s, which it does not hold", i%len(rs), k.Fingerprint)
		}
		if name[k.Fingerprint] == "" {
			name[k.Fingerprint] = "extra:" + k.Fingerprint
		}
		count[name[k.Fingerprint]]++
	}
	return count
}

func even(t *testing.T, count map[string]int, keys, within int) {
	t.Helper()
	lo, hi := -1, 0
	for _, c := range count {
		if lo < 0 || c < lo {
			lo = c
		}
		hi = max(hi, c)
	}
	if len(count) != keys || hi-lo > within {
		t.Errorf("picks by key %v: want %d keys within %d of each other", count, keys, within)
	}
}

func membership(t *testing.T, r *keyring.Ring) keyring.Membership {
	t.Helper()
	m, err := r.Membership(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Replicas that list the same keys in different orders share one even
// rotation and all agree with the fleet.
func TestReplicasInAnotherOrderShareOneRotation(t *testing.T) {
	_, url := redistest.Open(t)
	keys := labeled(t, "k1,k2,k3,k4,k5,k6")
	rev := labeled(t, "k6,k5,k4,k3,k2,k1")
	rs := replicas(t, url, keys, rev, keys)
	even(t, pickRoundRobin(t, rs, 600), 6, 0)
	for i, r := range rs {
		if m := membership(t, r); m.Differs() || m.Sets != 1 || m.Replicas != 3 || m.Pool != 6 {
			t.Errorf("replica %d: %+v, want the fleet's set", i, m)
		}
	}
}

// A replica that lacks a key is never given it; the others still use it,
// the rotation stays even, and only that replica differs from the fleet.
func TestReplicaLackingAKey(t *testing.T) {
	_, url := redistest.Open(t)
	all := labeled(t, "k1,k2,k3,k4,k5,k6")
	rs := replicas(t, url, all, labeled(t, "k1,k2,k3,k4,k5"), all)
	even(t, pickRoundRobin(t, rs, 600), 6, 2)
	if m := membership(t, rs[1]); !m.Differs() || len(m.Missing) != 1 || m.Missing[0] != all[5].Fingerprint || len(m.Extra) != 0 || m.Sets != 2 {
		t.Errorf("the replica lacking k6: %+v", m)
	}
	for _, i := range []int{0, 2} {
		if m := membership(t, rs[i]); m.Differs() {
			t.Errorf("replica %d holds the fleet's keys but differs: %+v", i, m)
		}
	}
	f, err := rs[0].Admin().Fleet(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f.Replicas != 3 || f.Pool != 6 || len(f.Sets) != 2 || f.Sets[0].Keys != 6 || f.Sets[0].Replicas != 2 || f.Sets[1].Keys != 5 || f.Sets[1].Replicas != 1 {
		t.Errorf("fleet %+v, want 3 replicas, sets of 6 keys (2 replicas) and 5 keys (1)", f)
	}
}

// A replica with a key the others lack uses it itself; the others are
// never given it; the rotation stays even; only that replica differs.
func TestReplicaWithAnExtraKey(t *testing.T) {
	_, url := redistest.Open(t)
	five := labeled(t, "k1,k2,k3,k4,k5")
	six := labeled(t, "k1,k2,k3,k4,k5,k6")
	rs := replicas(t, url, five, five, six)
	even(t, pickRoundRobin(t, rs, 600), 6, 2)
	if m := membership(t, rs[2]); len(m.Extra) != 1 || m.Extra[0] != six[5].Fingerprint || len(m.Missing) != 0 || m.Pool != 6 || m.Fleet != 5 {
		t.Errorf("the replica with k6: %+v", m)
	}
	if m := membership(t, rs[0]); m.Differs() {
		t.Errorf("a replica with the fleet's keys differs: %+v", m)
	}
	// The extra key leaves the pool when its one holder reloads without it.
	if err := rs[2].SetKeys(context.Background(), five); err != nil {
		t.Fatal(err)
	}
	if m := membership(t, rs[0]); m.Pool != 5 || m.Sets != 1 {
		t.Errorf("after the reload: %+v, want a pool of 5 keys, one set", m)
	}
}

// A call reported within the RPM margin frees its slot a minute after the
// report, not a minute plus the margin after the pick; the budget still
// holds.
func TestReportReleasesTheMarginOfAnAnsweredCall(t *testing.T) {
	rdb, _ := redistest.Open(t)
	ctx := context.Background()
	keys := labeled(t, "a:k1,a:k2")
	r := newRing(t, rdb, keys, keyring.Options{RPM: 2, RPMMargin: 30 * time.Second})
	var picked []keyring.Key
	for range 2 {
		k, err := r.Pick(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		picked = append(picked, k)
	}
	_, err := r.Pick(ctx, nil)
	var nk *keyring.NoKeyError
	if !errors.As(err, &nk) || nk.RetryAfter < 80*time.Second {
		t.Fatalf("over budget before any report: %v, want a wait of about 90s (a minute plus the margin)", err)
	}
	for _, k := range picked {
		if _, err := r.Report(ctx, k, keyring.Outcome{Kind: keyring.Success}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = r.Pick(ctx, nil)
	if !errors.As(err, &nk) || nk.RetryAfter > 61*time.Second || nk.RetryAfter < 50*time.Second || !strings.Contains(nk.Reason, "GEMINI_RPM") {
		t.Fatalf("over budget after both calls answered: %v, want a wait of about a minute", err)
	}
	// A second report of the same call changes nothing.
	if _, err := r.Report(ctx, picked[0], keyring.Outcome{Kind: keyring.Success}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pick(ctx, nil); !errors.As(err, &nk) {
		t.Fatalf("a repeated report freed a slot: %v", err)
	}
}
