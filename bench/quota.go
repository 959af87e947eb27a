package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// partQuota: 3 projects, keyring RPM = the fake's quota Q per project,
// offered load 2x the pool's quota, one worker then three.
func partQuota(ctx context.Context, env *benchEnv, rep *report) error {
	q := *flagQuotaQ
	var b strings.Builder
	fmt.Fprintf(&b, "## 3. Quota utilisation\n\n3 projects (`a:`, `b:`, `c:`, one key each). The fake (bench/stack.go, geminifake's Upstream with a Respond that counts every call it does not refuse in a sliding minute per project) enforces Q = %d calls/min per project and answers over-quota calls with geminifake's `429_per_minute` fixture (Google's body, RetryInfo 26s); 200 ms mean latency (uniform 100-300 ms). keyq runs with `GEMINI_RPM` = Q (and, as a diagnostic, 0.98 Q), Concurrency 50 per worker. Offered load: 2 x 3Q = %d jobs/min through `POST /api/analyze-character`, for %s of warm-up then a measured window of %s (real time: Redis's clock cannot be scaled). Done = upstream 200s in the window.\n\n", q, 6*q, *flagQuotaWarm, *flagQuotaDur)
	fmt.Fprintf(&b, "| workers | `GEMINI_RPM` | offered | done in window | done/min | fraction of quota (goal >= 0.95) | upstream calls | 429s | 429 share (goal < 1%%) |\n|---|---|---|---|---|---|---|---|---|\n")
	type cfg struct {
		nw   int
		frac float64
	}
	for _, c := range []cfg{{1, *flagQuotaRPM}, {3, *flagQuotaRPM}, {1, 0.98}} {
		nw := c.nw
		r, err := quotaRun(ctx, env, nw, q, c.frac)
		if err != nil {
			return err
		}
		frac := r.perMin / float64(3*q)
		share := float64(r.r429) / float64(max(r.calls, 1))
		fmt.Fprintf(&b, "| %d | %d | %d | %d | %.0f | %.3f | %d | %d | %.2f%% |\n", nw, int(float64(q)*c.frac), r.offered, r.done, r.perMin, frac, r.calls, r.r429, 100*share)
		if c.frac != *flagQuotaRPM {
			b.WriteString(fmt.Sprintf("\nDiagnostic row (%d worker, `GEMINI_RPM` = %d): %d 429s, %.3f of the quota.\n\n", nw, int(float64(q)*c.frac), r.r429, frac))
			rdb := env.newRDB()
			rdb.FlushDB(ctx)
			rdb.Close()
			continue
		}
		if frac < 0.95 {
			hint := ""
			if r.r429 > 0 {
				hint = fmt.Sprintf(": it got %d 429s at the edges of the sliding minute (keyring counts a call at pick time on Redis's clock, the upstream at arrival), and each one cools the whole project for the fixture's RetryInfo 26 s, up to %d calls of quota, while the budget would have freed a slot within milliseconds; see the diagnostic row with `GEMINI_RPM` 2%% under Q", r.r429, r.r429*26*int64(q)/60)
			}
			rep.note("quota (%d worker(s), `GEMINI_RPM` = Q): done/min is %.3f of the quota (goal >= 0.95)%s", nw, frac, hint)
		}
		if share >= 0.01 {
			rep.note("quota (%d worker(s)): %.2f%% of upstream calls answered 429 (goal < 1%%)", nw, 100*share)
		}
		rdb := env.newRDB()
		rdb.FlushDB(ctx)
		rdb.Close()
	}
	rep.add(b.String())
	return nil
}

type quotaResult struct {
	offered, done int
	perMin        float64
	calls, r429   int64
}

func quotaRun(ctx context.Context, env *benchEnv, nw, q int, frac float64) (quotaResult, error) {
	list, proj := keyList([]string{"a", "b", "c"})
	f := newFake(proj, q, 0, 200*time.Millisecond)
	defer f.close()
	a, err := startAPI(env, 3)
	if err != nil {
		return quotaResult{}, err
	}
	defer a.close()
	st, err := startWorkers(env, f.srv.URL, nw, workerCfg{keys: list, pool: model, rpm: int(float64(q) * frac), concurrency: 50, retries: 5,
		retryDelay: time.Second, jobDelay: 15 * time.Second, timeout: time.Minute})
	if err != nil {
		return quotaResult{}, err
	}
	defer st.stop()
	rate := float64(6*q) / 60 // per second
	total := *flagQuotaWarm + *flagQuotaDur
	t0 := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	offered := 0
	for now := range tick.C {
		if now.Sub(t0) >= total {
			break
		}
		offered++
		wg.Add(1)
		go func() { defer wg.Done(); a.post(ctx) }()
	}
	wg.Wait()
	ws := t0.Add(*flagQuotaWarm)
	we := t0.Add(total)
	done := f.okBetween(ws, we)
	return quotaResult{offered: offered, done: done, perMin: float64(done) / we.Sub(ws).Minutes(), calls: f.calls.Load(), r429: f.r429.Load()}, nil
}
