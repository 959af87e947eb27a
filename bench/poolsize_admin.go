//go:build !oldkeyring

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/keyring"
)

// poolAdmin times what surrounds the pick at 10,000 keys: joining the
// pool, a reload in another order, the admin reads, a probe claim.
func poolAdmin(ctx context.Context, rdb *redis.Client, b *strings.Builder, rep *report) error {
	const n = 10000
	keys, err := poolKeys(n)
	if err != nil {
		return err
	}
	ring, err := keyring.New(rdb, keys, keyring.Options{Pool: "admin", RPM: 1 << 30, RPD: 1 << 30})
	if err != nil {
		return err
	}
	type row struct {
		what, goal string
		took       time.Duration
		limit      time.Duration
	}
	var rows []row
	timed := func(what, goal string, limit time.Duration, reps int, f func() error) error {
		var ds durs
		for range reps {
			t0 := time.Now()
			if err := f(); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			ds = append(ds, time.Since(t0))
		}
		rows = append(rows, row{what, goal, ds.pct(.5), limit})
		return nil
	}
	if err := timed("Announce, 10,000 new keys", "", 0, 1, func() error { return ring.Announce(ctx) }); err != nil {
		return err
	}
	// 1% disabled with probes, 9% cooling; a few picks to have counts.
	err = spread(n/10, func(i int) error {
		o := keyring.Outcome{Kind: keyring.CoolKey, Class: "billing", For: time.Hour, Reason: "bench"}
		if i%10 == 0 {
			o = keyring.Outcome{Kind: keyring.Disable, Class: "permission_denied", Probe: true, Reason: "bench"}
		}
		_, err := ring.Report(ctx, keys[i*10], o)
		return err
	})
	if err != nil {
		return err
	}
	rev := slices.Clone(keys)
	slices.Reverse(rev)
	var list strings.Builder
	for _, k := range rev {
		fmt.Fprintf(&list, "%s:bench-key-%s,", k.Project, strings.TrimPrefix(k.Secret(), "bench-key-"))
	}
	reloaded, _, err := keyring.ParseKeys(list.String())
	if err != nil {
		return err
	}
	if err := timed("SetKeys (reload), 10,000 keys in reverse order", "< 1 s", time.Second, 3, func() error {
		if err := ring.SetKeys(ctx, reloaded); err != nil {
			return err
		}
		return ring.SetKeys(ctx, keys)
	}); err != nil {
		return err
	}
	rows[len(rows)-1].took /= 2 // two reloads per rep
	a := ring.Admin()
	if err := timed("Admin.Page, first 100 keys", "< 100 ms", 100*time.Millisecond, 5, func() error {
		_, err := a.Page(ctx, keyring.Query{Limit: 100})
		return err
	}); err != nil {
		return err
	}
	if err := timed("Admin.Page, 1,000 keys from 5,000 on", "< 100 ms", 100*time.Millisecond, 5, func() error {
		_, err := a.Page(ctx, keyring.Query{Limit: 1000, Cursor: "5000"})
		return err
	}); err != nil {
		return err
	}
	if err := timed("Admin.Page, disabled keys, 100", "< 100 ms", 100*time.Millisecond, 5, func() error {
		_, err := a.Page(ctx, keyring.Query{State: keyring.StateDisabled, Limit: 100})
		return err
	}); err != nil {
		return err
	}
	if err := timed("Admin.Page, one project", "< 100 ms", 100*time.Millisecond, 5, func() error {
		_, err := a.Page(ctx, keyring.Query{Project: keys[4242].Project})
		return err
	}); err != nil {
		return err
	}
	if err := timed("Admin.Summary (5,000 projects)", "< 100 ms", 100*time.Millisecond, 5, func() error {
		_, err := a.Summary(ctx)
		return err
	}); err != nil {
		return err
	}
	if err := timed("Admin.Statuses (every key)", "", 0, 3, func() error {
		_, err := a.Statuses(ctx)
		return err
	}); err != nil {
		return err
	}
	if err := timed("Ring.Membership", "", 0, 3, func() error {
		_, err := ring.Membership(ctx)
		return err
	}); err != nil {
		return err
	}
	if err := timed("Ring.DueProbes (none due of 1,000 disabled)", "", 0, 5, func() error {
		_, err := ring.DueProbes(ctx)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(b, "Around the pick, at 10,000 keys in 5,000 projects (9%% cooling, 1%% disabled with probes), median of a few runs:\n\n| operation | time | goal |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %s |\n", r.what, ms(r.took), r.goal)
		if r.limit > 0 && r.took >= r.limit {
			rep.note("poolsize: %s took %s (goal %s)", r.what, ms(r.took), r.goal)
		}
	}
	b.WriteString("\n")
	return nil
}
