package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// partMem: RSS with N jobs in flight against an upstream that takes 30 s.
func partMem(ctx context.Context, env *benchEnv, rep *report) error {
	n := *flagMemJobs
	list, proj := keyList([]string{"a", "b", "c"})
	f := newFake(proj, 0, 0, *flagMemLat)
	f.fixed = true
	defer f.close()
	a, err := startAPI(env, 3)
	if err != nil {
		return err
	}
	defer a.close()
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(500 * time.Millisecond)
	base := rss()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	g0 := runtime.NumGoroutine()
	st, err := startWorkers(env, f.srv.URL, 1, workerCfg{keys: list, pool: model, concurrency: n, retries: 5,
		retryDelay: time.Second, jobDelay: 15 * time.Second, timeout: 2 * *flagMemLat})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); a.post(ctx) }()
	}
	wg.Wait()
	deadline := time.Now().Add(*flagMemLat / 2)
	for f.inFlight.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	inflight := f.inFlight.Load()
	peak := rss()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	g1 := runtime.NumGoroutine()
	f.close() // cut the slow calls so that shutdown is quick
	st.stop()
	var b strings.Builder
	fmt.Fprintf(&b, "## 5. Memory\n\nIn-process approximation: one `worker.Worker` (Concurrency %d) in the bench process, which also serves the fake upstream (latency %s, fixed) and the API. Baseline measured after the API and fake started, before the worker; the difference is what the worker and its %d in-flight calls add, plus the fake's server side of those %d connections.\n\n", n, *flagMemLat, n, n)
	fmt.Fprintf(&b, "| | baseline | %d in flight | difference |\n|---|---|---|---|\n", inflight)
	fmt.Fprintf(&b, "| VmRSS | %.1f MiB | %.1f MiB | %.1f MiB |\n", mib(base), mib(peak), mib(peak-base))
	fmt.Fprintf(&b, "| Go heap in use | %.1f MiB | %.1f MiB | %.1f MiB |\n", mib(int64(ms0.HeapInuse)), mib(int64(ms1.HeapInuse)), mib(int64(ms1.HeapInuse)-int64(ms0.HeapInuse)))
	fmt.Fprintf(&b, "| goroutines | %d | %d | %d |\n\n", g0, g1, g1-g0)
	if inflight < int64(n) {
		rep.note("mem: only %d of %d jobs were in flight upstream when measured", inflight, n)
	}
	fmt.Fprintf(&b, "RSS of the API alone under a steady POST load was not measured separately (the API shares this process).\n")
	rep.add(b.String())
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
