package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/keyring"
)

var (
	flagPoolDur    = flag.Duration("pool-dur", time.Second, "poolsize: duration of each pool size x unusable share x budgets")
	flagPoolSizes  = flag.String("pool-sizes", "3,100,1000,10000", "poolsize: pool sizes (keys; two keys a project from 100 keys up)")
	flagPoolSVG    = flag.String("pool-svg", "bench/poolsize.svg", "poolsize: where to write the plot")
	flagPoolJSON   = flag.String("pool-json", "", "poolsize: also write the rows as JSON here (to feed -pool-before)")
	flagPoolBefore = flag.String("pool-before", "", "poolsize: JSON rows of an earlier run (another keyring) to show side by side")
)

// poolRow is one measured configuration.
type poolRow struct {
	Keys, Projects int
	Unusable       float64 // share of keys cooling or disabled
	Budgets        bool
	Picks          int
	PerSec         float64
	P50, P99       time.Duration
	UsecPerCall    float64 // EVALSHA usec_per_call in INFO commandstats
	Errors         int
}

func (r poolRow) key() string { return fmt.Sprintf("%d/%.2f/%v", r.Keys, r.Unusable, r.Budgets) }

// partPoolsize: Ring.Pick at 3 to 10,000 keys, 0/90/99% unusable, with and
// without budgets, 8 goroutines on one client.
func partPoolsize(ctx context.Context, env *benchEnv, rep *report) error {
	rdb := env.newRDB()
	defer rdb.Close()
	var sizes []int
	for _, s := range strings.Split(*flagPoolSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -pool-sizes %q", *flagPoolSizes)
		}
		sizes = append(sizes, n)
	}
	var rows []poolRow
	for _, n := range sizes {
		for _, frac := range []float64{0, 0.9, 0.99} {
			for _, budgets := range []bool{false, true} {
				row, err := poolRun(ctx, rdb, n, frac, budgets)
				if err != nil {
					return err
				}
				rows = append(rows, row)
				rdb.FlushDB(ctx)
			}
		}
	}
	before := map[string]poolRow{}
	if *flagPoolBefore != "" {
		b, err := os.ReadFile(*flagPoolBefore)
		if err != nil {
			return err
		}
		var old []poolRow
		if err := json.Unmarshal(b, &old); err != nil {
			return err
		}
		for _, r := range old {
			before[r.key()] = r
		}
	}
	if *flagPoolJSON != "" {
		b, _ := json.MarshalIndent(rows, "", " ")
		if err := os.WriteFile(*flagPoolJSON, b, 0o644); err != nil {
			return err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Pool size\n\n`keyring.Ring.Pick` with 8 goroutines on one go-redis client for %s per row; n keys in n/2 projects (3 keys: 3 projects); the unusable share is half cooling (`CoolKey` 1 h), half disabled. Budgets: `RPM` and `RPD` 2^30 (checked and counted on every pick, never reached). `usec/call` is EVALSHA's `usec_per_call` over the row (`INFO commandstats`): Redis's own time per pick.", *flagPoolDur)
	if len(before) > 0 {
		fmt.Fprintf(&b, " \"before\" columns: the same bench on the keyring before this change (`%s`).", *flagPoolBefore)
	}
	b.WriteString("\n\n" + placement(ctx, rdb) + "\n\n")
	if len(before) > 0 {
		b.WriteString("| keys | unusable | budgets | before picks/s | before p99 | before usec/call | picks/s | p50 | p99 | usec/call | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	} else {
		b.WriteString("| keys | unusable | budgets | picks/s | p50 | p99 | usec/call | errors |\n|---|---|---|---|---|---|---|---|\n")
	}
	base := map[bool]float64{}
	for _, r := range rows {
		if r.Keys == 3 && r.Unusable == 0 {
			base[r.Budgets] = r.UsecPerCall
		}
	}
	for _, r := range rows {
		bud := "off"
		if r.Budgets {
			bud = "on"
		}
		if len(before) > 0 {
			o, ok := before[r.key()]
			ob := "-"
			if ok {
				ob = fmt.Sprintf("%.0f | %s | %.1f", o.PerSec, ms(o.P99), o.UsecPerCall)
			} else {
				ob = "- | - | -"
			}
			fmt.Fprintf(&b, "| %d | %.0f%% | %s | %s | %.0f | %s | %s | %.1f | %d |\n", r.Keys, 100*r.Unusable, bud, ob, r.PerSec, ms(r.P50), ms(r.P99), r.UsecPerCall, r.Errors)
		} else {
			fmt.Fprintf(&b, "| %d | %.0f%% | %s | %.0f | %s | %s | %.1f | %d |\n", r.Keys, 100*r.Unusable, bud, r.PerSec, ms(r.P50), ms(r.P99), r.UsecPerCall, r.Errors)
		}
		if r.Keys >= 10000 {
			if r.PerSec < 10000 {
				rep.note("poolsize: %d keys, %.0f%% unusable, budgets %s: %.0f picks/s (goal >= 10,000)", r.Keys, 100*r.Unusable, bud, r.PerSec)
			}
			if r.P99 >= time.Millisecond {
				rep.note("poolsize: %d keys, %.0f%% unusable, budgets %s: p99 %s (goal < 1 ms)", r.Keys, 100*r.Unusable, bud, ms(r.P99))
			}
			if b0 := base[r.Budgets]; b0 > 0 && r.UsecPerCall > 2*b0 {
				rep.note("poolsize: %d keys, %.0f%% unusable, budgets %s: %.1f usec/call, over 2x the 3-key pool's %.1f", r.Keys, 100*r.Unusable, bud, r.UsecPerCall, b0)
			}
		}
		if r.Errors > 0 {
			rep.note("poolsize: %d keys, %.0f%% unusable: %d picks failed", r.Keys, 100*r.Unusable, r.Errors)
		}
	}
	fmt.Fprintf(&b, "\n![picks/s vs pool size](%s)\n\n", "poolsize.svg")
	if err := poolAdmin(ctx, rdb, &b, rep); err != nil {
		return err
	}
	rep.add(b.String())
	return os.WriteFile(*flagPoolSVG, []byte(poolSVG(rows, before)), 0o644)
}

func poolKeys(n int) ([]keyring.Key, error) {
	var b strings.Builder
	for i := range n {
		p := i / 2
		if n <= 3 {
			p = i
		}
		fmt.Fprintf(&b, "p%05d:bench-key-%d,", p, i)
	}
	keys, _, err := keyring.ParseKeys(b.String())
	return keys, err
}

// spread runs f(0..n-1) on 8 goroutines.
func spread(n int, f func(i int) error) error {
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func poolRun(ctx context.Context, rdb *redis.Client, n int, frac float64, budgets bool) (poolRow, error) {
	keys, err := poolKeys(n)
	if err != nil {
		return poolRow{}, err
	}
	opts := keyring.Options{Pool: fmt.Sprintf("size%d-%v-%v", n, frac, budgets)}
	if budgets {
		opts.RPM, opts.RPD = 1<<30, 1<<30
	}
	ring, err := keyring.New(rdb, keys, opts)
	if err != nil {
		return poolRow{}, err
	}
	if err := ring.Announce(ctx); err != nil {
		return poolRow{}, err
	}
	bad := int(float64(n)*frac + 0.5)
	if frac > 0 {
		bad = min(bad, n-1)
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	err = spread(bad, func(i int) error {
		o := keyring.Outcome{Kind: keyring.CoolKey, Class: "billing", For: time.Hour, Reason: "bench"}
		if i%2 == 1 {
			o = keyring.Outcome{Kind: keyring.Disable, Class: "permission_denied", Reason: "bench"}
		}
		_, err := ring.Report(ctx, keys[order[i]], o)
		return err
	})
	if err != nil {
		return poolRow{}, err
	}
	projects := map[string]bool{}
	for _, k := range keys {
		projects[k.Project] = true
	}
	ring.Pick(ctx, nil) // load the script
	before, err := commandUsec(ctx, rdb)
	if err != nil {
		return poolRow{}, err
	}
	all, errs, el := pickLoad(ctx, ring, 8, *flagPoolDur)
	after, err := commandUsec(ctx, rdb)
	if err != nil {
		return poolRow{}, err
	}
	calls := after["evalsha"][0] - before["evalsha"][0]
	usec := after["evalsha"][1] - before["evalsha"][1]
	row := poolRow{Keys: n, Projects: len(projects), Unusable: frac, Budgets: budgets, Picks: len(all),
		PerSec: float64(len(all)) / el.Seconds(), P50: all.pct(.5), P99: all.pct(.99), Errors: errs}
	if calls > 0 {
		row.UsecPerCall = float64(usec) / float64(calls)
	}
	return row, nil
}

// commandUsec returns {calls, usec} per command from INFO commandstats.
func commandUsec(ctx context.Context, rdb *redis.Client) (map[string][2]int64, error) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string][2]int64{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		name, rest, _ := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		var v [2]int64
		for _, f := range strings.Split(rest, ",") {
			if x, ok := strings.CutPrefix(f, "calls="); ok {
				v[0], _ = strconv.ParseInt(x, 10, 64)
			}
			if x, ok := strings.CutPrefix(f, "usec="); ok {
				v[1], _ = strconv.ParseInt(x, 10, 64)
			}
		}
		out[name] = v
	}
	return out, nil
}

// poolSVG draws picks/s against pool size (log-log), one line per unusable
// share, budgets on; dashed lines for the "before" run.
func poolSVG(rows []poolRow, before map[string]poolRow) string {
	const w, h, l, t, pw, ph = 620, 380, 70, 30, 420, 280
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18" text-anchor="middle" font-size="14">Ring.Pick, 8 goroutines, budgets on: picks/s vs keys</text>`+"\n", l+pw/2)
	lg := func(v float64) float64 {
		if v < 1 {
			v = 1
		}
		return logf(v)
	}
	minX, maxX := lg(3), lg(10000)
	minY, maxY := lg(1), lg(100000)
	x := func(k int) float64 { return l + (lg(float64(k))-minX)/(maxX-minX)*pw }
	y := func(v float64) float64 { return t + ph - (lg(v)-minY)/(maxY-minY)*ph }
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", l, t+ph, l+pw, t+ph)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", l, t, l, t+ph)
	for _, k := range []int{3, 10, 100, 1000, 10000} {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(k), t+ph+16, k)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">keys (log)</text>`+"\n", l+pw/2, t+ph+32)
	for _, v := range []float64{1, 10, 100, 1000, 10000, 100000} {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", l-6, y(v)+4, v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", l, y(v), l+pw, y(v))
	}
	colors := map[float64]string{0: "#1f77b4", 0.9: "#ff7f0e", 0.99: "#d62728"}
	ly := t + 10
	for _, frac := range []float64{0, 0.9, 0.99} {
		for _, old := range []bool{false, true} {
			var pts []string
			for _, r := range rows {
				if r.Unusable != frac || !r.Budgets {
					continue
				}
				if old {
					o, ok := before[r.key()]
					if !ok {
						continue
					}
					r = o
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(r.Keys), y(r.PerSec)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(r.Keys), y(r.PerSec), colors[frac])
			}
			if len(pts) == 0 {
				continue
			}
			dash, label := "", "after"
			if old {
				dash, label = ` stroke-dasharray="5,4"`, "before"
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), colors[frac], dash)
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", l+pw+8, ly-4, l+pw+28, ly-4, colors[frac], dash)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%.0f%% unusable, %s</text>`+"\n", l+pw+32, ly, colors[frac], 100*frac, label)
			ly += 16
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func logf(v float64) float64 { return math.Log10(v) }

// placement says which CPUs the load generator and redis-server ran on:
// latency under load depends on whether they compete for the same cores.
func placement(ctx context.Context, rdb *redis.Client) string {
	pid := rdb.InfoMap(ctx, "server").Item("Server", "process_id")
	return fmt.Sprintf("Where it ran: the load generator (this process) on CPUs %s with GOMAXPROCS %d; redis-server (pid %s) on CPUs %s. "+
		"`bench/pool-pinned.sh` gives Redis a core of its own, as a deployment does; without it the client goroutines and Redis share every core.",
		cpusOf("self"), runtime.GOMAXPROCS(0), pid, cpusOf(pid))
}

// cpusOf is a process's Cpus_allowed_list ("?" when unknown: Redis on
// another host, or no /proc).
func cpusOf(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
