package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/tasks"
)

// partOverhead: end to end jobs/s of raw asynq vs keyq, enqueue-only rates,
// and POST latency at a fixed offered rate.
func partOverhead(ctx context.Context, env *benchEnv, rep *report) error {
	var b strings.Builder
	n := *flagN
	fmt.Fprintf(&b, "## 2. Overhead over raw asynq\n\nSame redis-server, run one after the other in this process.\n\n")

	// Alternate raw asynq and keyq -reps times; the median ratio is the claim.
	type rep3 struct{ raw, keyq, pooled float64 }
	var reps []rep3
	var keyqCalls int64
	for i := 0; i < *flagReps; i++ {
		rawRate, err := rawAsynq(ctx, env, n)
		if err != nil {
			return err
		}
		kr, calls, err := keyqE2E(ctx, env, n, false)
		if err != nil {
			return err
		}
		keyqCalls += calls
		pr, _, err := keyqE2E(ctx, env, n, true)
		if err != nil {
			return err
		}
		reps = append(reps, rep3{rawRate, kr, pr})
		flush := env.newRDB()
		flush.FlushDB(ctx)
		flush.Close()
	}
	fmt.Fprintf(&b, "End to end, %d jobs per run, workers at Concurrency 50, submitted by 16 goroutines while the worker runs, completion seen by 16 pollers (every 20 ms per job); raw asynq and keyq alternate, %d times:\n\n", n, *flagReps)
	fmt.Fprintf(&b, "- raw asynq: `Client.Enqueue` (TaskID, Retention 24h) -> handler `ResultWriter().Write` -> `Inspector.GetTaskInfo` completed\n- keyq: HTTP POST `api.Handler` -> Redis -> `worker.Worker` -> `Ring.Pick` -> geminifake (0 latency, `200_ok_json`) over HTTP -> result stored -> GET `succeeded`\n- keyq, pooled: the same with the Gemini client given an `http.Client` with MaxIdleConnsPerHost 256 (cmd/keyq passes none: Go's default transport keeps 2 idle connections per host)\n\n")
	fmt.Fprintf(&b, "| run | raw asynq jobs/s | keyq jobs/s | ratio | keyq pooled jobs/s | ratio |\n|---|---|---|---|---|---|\n")
	var ratios, pratios []float64
	for i, r := range reps {
		ratios = append(ratios, r.keyq/r.raw)
		pratios = append(pratios, r.pooled/r.raw)
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.2f | %.0f | %.2f |\n", i+1, r.raw, r.keyq, r.keyq/r.raw, r.pooled, r.pooled/r.raw)
	}
	ratio := median(ratios)
	fmt.Fprintf(&b, "| **median** (goal >= 0.6) | | | **%.2f** | | %.2f |\n\n", ratio, median(pratios))
	fmt.Fprintf(&b, "keyq made %d upstream calls for %d jobs.\n\n", keyqCalls, n*len(reps))
	if ratio < 0.6 {
		rep.note("overhead: keyq end to end is %.2f of raw asynq (goal >= 0.6)", ratio)
	}

	// Enqueue only.
	apiRate, asynqRate, err := enqueueOnly(ctx, env)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "Enqueue only, 16 goroutines, %s each, no worker running:\n\n| path | enqueues/s |\n|---|---|\n| asynq `Client.Enqueue` (same task options as the API) | %.0f |\n| keyq `POST /api/analyze-character` | %.0f |\n| ratio API / asynq | %.2f |\n\n", *flagEnqDur, asynqRate, apiRate, apiRate/asynqRate)

	lat, sent, errs, err := fixedRate(ctx, env)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "POST latency at a fixed offered rate of %d/s for %s (open loop, one goroutine per request): %d sent, %d errors, p50 %s, p99 %s, max %s.\n", *flagRate, *flagRateDur, sent, errs, ms(lat.pct(.5)), ms(lat.pct(.99)), ms(lat.pct(1)))
	if errs > 0 {
		rep.note("overhead: %d of %d POSTs at %d/s failed", errs, sent, *flagRate)
	}
	rep.add(b.String())
	return nil
}

// pollAll waits until done(id) for every id, with 16 pollers; returns when all are done.
func pollAll(ctx context.Context, ids <-chan string, done func(string) bool) {
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				for !done(id) {
					if ctx.Err() != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

func rawAsynq(ctx context.Context, env *benchEnv, n int) (float64, error) {
	rdb := env.newRDB()
	defer rdb.Close()
	const q = "rawbench"
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 50, Queues: map[string]int{q: 1}, Logger: nopLogger{}})
	mux := asynq.NewServeMux()
	mux.HandleFunc("raw", func(ctx context.Context, t *asynq.Task) error {
		_, err := t.ResultWriter().Write([]byte(`{"summary":"ok","traits":["x"]}`))
		return err
	})
	if err := srv.Start(mux); err != nil {
		return 0, err
	}
	defer srv.Shutdown()
	cli := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ids := make(chan string, n)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	var next atomic.Int64
	var enqErr atomic.Value
	go func() {
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					id := uuid.NewString()
					_, err := cli.EnqueueContext(ctx, asynq.NewTask("raw", jobBody), asynq.Queue(q), asynq.TaskID(id), asynq.Retention(24*time.Hour), asynq.MaxRetry(4))
					if err != nil {
						enqErr.Store(err)
						continue
					}
					ids <- id
				}
			}()
		}
		wg.Wait()
		close(ids)
	}()
	pollAll(ctx, ids, func(id string) bool {
		info, err := insp.GetTaskInfo(q, id)
		return err == nil && info.State == asynq.TaskStateCompleted
	})
	el := time.Since(t0)
	if e, ok := enqErr.Load().(error); ok {
		return 0, fmt.Errorf("raw enqueue: %w", e)
	}
	if ctx.Err() != nil {
		return 0, fmt.Errorf("raw asynq did not finish %d jobs in time", n)
	}
	return float64(n) / el.Seconds(), nil
}

func keyqE2E(ctx context.Context, env *benchEnv, n int, pooled bool) (float64, int64, error) {
	list, proj := keyList([]string{"a", "b", "c"})
	f := newFake(proj, 0, 0, 0)
	defer f.close()
	a, err := startAPI(env, 3)
	if err != nil {
		return 0, 0, err
	}
	defer a.close()
	st, err := startWorkers(env, f.srv.URL, 1, workerCfg{keys: list, pool: model, concurrency: 50, retries: 5, retryDelay: time.Second, jobDelay: 15 * time.Second, timeout: time.Minute, pooledHTTP: pooled})
	if err != nil {
		return 0, 0, err
	}
	defer st.stop()
	ids := make(chan string, n)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	var next atomic.Int64
	var postErr atomic.Value
	go func() {
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					id, err := a.post(ctx)
					if err != nil {
						postErr.Store(err)
						continue
					}
					ids <- id
				}
			}()
		}
		wg.Wait()
		close(ids)
	}()
	var bad atomic.Value
	pollAll(ctx, ids, func(id string) bool {
		j, err := a.get(ctx, id)
		if err != nil {
			return false
		}
		if j.Status == "failed" {
			bad.Store(fmt.Errorf("job %s failed: %+v", id, j.Error))
			return true
		}
		return j.Status == "succeeded"
	})
	el := time.Since(t0)
	if e, ok := postErr.Load().(error); ok {
		return 0, 0, fmt.Errorf("keyq POST: %w", e)
	}
	if e, ok := bad.Load().(error); ok {
		return 0, 0, e
	}
	if ctx.Err() != nil {
		return 0, 0, fmt.Errorf("keyq did not finish %d jobs in time", n)
	}
	return float64(n) / el.Seconds(), f.calls.Load(), nil
}

func enqueueOnly(ctx context.Context, env *benchEnv) (apiRate, asynqRate float64, err error) {
	a, err := startAPI(env, 3)
	if err != nil {
		return 0, 0, err
	}
	defer a.close()
	rdb := env.newRDB()
	defer rdb.Close()
	cli := asynq.NewClientFromRedisClient(rdb)
	run := func(f func() error) (float64, error) {
		var count atomic.Int64
		var firstErr atomic.Value
		end := time.Now().Add(*flagEnqDur)
		t0 := time.Now()
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					if err := f(); err != nil {
						firstErr.Store(err)
						return
					}
					count.Add(1)
				}
			}()
		}
		wg.Wait()
		if e, ok := firstErr.Load().(error); ok {
			return 0, e
		}
		return float64(count.Load()) / time.Since(t0).Seconds(), nil
	}
	asynqRate, err = run(func() error {
		p, _ := tasks.ParseAnalyzeCharacter(jobBody)
		t, err := tasks.NewAnalyzeCharacterTask(p)
		if err != nil {
			return err
		}
		_, err = cli.EnqueueContext(ctx, t, asynq.Queue(tasks.Queue), asynq.TaskID(uuid.NewString()),
			asynq.MaxRetry(tasks.AsynqMaxRetry(3)), asynq.Timeout(5*time.Minute), asynq.Retention(24*time.Hour))
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	apiRate, err = run(func() error { _, err := a.post(ctx); return err })
	return apiRate, asynqRate, err
}

func fixedRate(ctx context.Context, env *benchEnv) (durs, int, int, error) {
	a, err := startAPI(env, 3)
	if err != nil {
		return nil, 0, 0, err
	}
	defer a.close()
	var mu sync.Mutex
	var lat durs
	var errs, sent int
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(*flagRate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.Now().Add(*flagRateDur)
	for now := range tick.C {
		if now.After(end) {
			break
		}
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			_, err := a.post(ctx)
			d := time.Since(s)
			mu.Lock()
			if err != nil {
				errs++
			} else {
				lat = append(lat, d)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, sent, errs, nil
}

type nopLogger struct{}

func (nopLogger) Debug(...any) {}
func (nopLogger) Info(...any)  {}
func (nopLogger) Warn(...any)  {}
func (nopLogger) Error(...any) {}
func (nopLogger) Fatal(...any) {}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
