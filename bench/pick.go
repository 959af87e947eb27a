package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyq/keyq/keyring"
)

// partPick: keyring.Ring.Pick with 1, 8 and 64 goroutines on 3 keys.
func partPick(ctx context.Context, env *benchEnv, rep *report) error {
	rdb := env.newRDB()
	defer rdb.Close()
	list, _ := keyList([]string{"a", "b", "c"})
	keys, _, err := keyring.ParseKeys(list)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## 1. Key pick\n\n`keyring.Ring.Pick` on 3 keys (3 projects), no budgets, each goroutine count for %s on one go-redis client. Round trips = (EVALSHA + EVAL calls in `INFO commandstats`) / picks; goal: exactly 1.\n\n", *flagPickDur)
	fmt.Fprintf(&b, "| goroutines | budgets | picks | picks/s | p50 | p99 | round trips / pick |\n|---|---|---|---|---|---|---|\n")
	for _, rpm := range []int{0, 1 << 30} {
		ring, err := keyring.New(rdb, keys, keyring.Options{Pool: fmt.Sprintf("pickbench%d", rpm), RPM: rpm})
		if err != nil {
			return err
		}
		ring.Pick(ctx, nil) // load the script
		for _, g := range []int{1, 8, 64} {
			before, err := commandStats(ctx, rdb)
			if err != nil {
				return err
			}
			all, errs, el := pickLoad(ctx, ring, g, *flagPickDur)
			after, err := commandStats(ctx, rdb)
			if err != nil {
				return err
			}
			trips := (after["evalsha"] - before["evalsha"]) + (after["eval"] - before["eval"])
			perPick := float64(trips) / float64(len(all))
			budget := "none"
			if rpm > 0 {
				budget = "RPM 2^30 (zset log)"
			}
			fmt.Fprintf(&b, "| %d | %s | %d | %.0f | %s | %s | %.3f |\n", g, budget, len(all), float64(len(all))/el.Seconds(), ms(all.pct(.50)), ms(all.pct(.99)), perPick)
			if errs > 0 {
				rep.note("pick: %d of %d picks returned an error (%d goroutines, budget %s)", errs, len(all), g, budget)
			}
			if perPick != 1 {
				rep.note("pick: %.3f Redis round trips per pick with %d goroutines (goal: exactly 1)", perPick, g)
			}
		}
	}
	rep.add(b.String())
	return nil
}

// pickLoad picks from ring with g goroutines for d, timing every pick, and
// returns the latencies, the failed picks and the wall time.
func pickLoad(ctx context.Context, ring *keyring.Ring, g int, d time.Duration) (all durs, errs int, el time.Duration) {
	var mu sync.Mutex
	end := time.Now().Add(d)
	t0 := time.Now()
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			var mine durs
			e := 0
			for time.Now().Before(end) {
				s := time.Now()
				_, err := ring.Pick(ctx, nil)
				mine = append(mine, time.Since(s))
				if err != nil {
					e++
				}
			}
			mu.Lock()
			all = append(all, mine...)
			errs += e
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, errs, time.Since(t0)
}
