package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/keyq/keyq/client"
	"github.com/keyq/keyq/tasks"
)

// clientsPickup measures, for a few TaskCheckIntervals, how long a job
// POSTed to an idle fleet waits before a worker runs it, and what the
// interval costs an idle Redis (INFO commandstats, one worker process:
// its job server and its webhook server).
func clientsPickup(ctx context.Context, env *benchEnv, rep *report, b *strings.Builder) error {
	b.WriteString("### POST -> running on an idle worker, and idle Redis load (one worker: job + webhook servers, one API)\n\n")
	b.WriteString("| WORKER_TASK_CHECK_INTERVAL | POST -> running p50 | p99 | idle Redis commands/s | of which EVALSHA (dequeue) |\n|---|---|---|---|---|\n")
	for _, check := range []time.Duration{time.Second, 200 * time.Millisecond, 100 * time.Millisecond, 50 * time.Millisecond} {
		if err := pickupRow(ctx, env, rep, b, check); err != nil {
			return err
		}
	}
	b.WriteString("\n")
	return nil
}

func pickupRow(ctx context.Context, env *benchEnv, rep *report, b *strings.Builder, check time.Duration) error {
	rdb := env.newRDB()
	defer rdb.Close()
	rdb.FlushDB(ctx)
	st, err := startClientsStack(env, check, 10*time.Millisecond)
	if err != nil {
		return err
	}
	defer st.stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f, err := watchFinals(ctx, st.rdb)
	if err != nil {
		return err
	}
	time.Sleep(3 * time.Second) // servers started, first heartbeats written
	before, err := commandStats(ctx, rdb)
	if err != nil {
		return err
	}
	const idle = 10 * time.Second
	time.Sleep(idle)
	after, err := commandStats(ctx, rdb)
	if err != nil {
		return err
	}
	total, evalsha := int64(0), after["evalsha"]-before["evalsha"]
	for k, v := range after {
		total += v - before[k]
	}
	total -= 2 // the INFO calls themselves
	c, _ := client.New(st.http.URL, client.Options{})
	var ds []time.Duration
	for range 40 {
		time.Sleep(300*time.Millisecond + time.Duration(rand.Int64N(int64(300*time.Millisecond))))
		t0 := time.Now()
		acc, err := c.SubmitAnalyzeCharacter(ctx, tasks.AnalyzeCharacter{Name: "Pickup"}, client.SubmitOptions{})
		if err != nil {
			return err
		}
		if _, err := c.Wait(ctx, acc.ID, nil); err != nil {
			return err
		}
		if r := f.await(f.running, acc.ID); !r.IsZero() {
			ds = append(ds, r.Sub(t0))
		}
	}
	p50 := pctl(ds, 50)
	fmt.Fprintf(b, "| %s | %s | %s | %.1f | %.1f |\n", check, msf(p50), msf(pctl(ds, 99)),
		float64(total)/idle.Seconds(), float64(evalsha)/idle.Seconds())
	if check == 100*time.Millisecond && p50 >= 100*time.Millisecond {
		rep.note("clients: POST -> running p50 %s at 100ms check interval misses the goal (< 100 ms)", msf(p50))
	}
	return nil
}

// clientsBatch times POST /api/batches of 10,000 items.
func clientsBatch(ctx context.Context, env *benchEnv, rep *report, b *strings.Builder) error {
	st, err := startClientsStack(env, time.Second, 10*time.Millisecond)
	if err != nil {
		return err
	}
	st.w.Shutdown() // nothing runs: the batch's enqueue alone is measured
	defer st.stop()
	c, _ := client.New(st.http.URL, client.Options{HTTPClient: nil})
	items := make([]tasks.BatchItem, tasks.MaxBatchItems)
	for i := range items {
		items[i] = tasks.BatchItem{CustomID: fmt.Sprintf("item-%05d", i),
			AnalyzeCharacter: tasks.AnalyzeCharacter{Name: fmt.Sprintf("Character %d", i), Description: "A batch item."}}
	}
	b.WriteString("### POST /api/batches, 10,000 items (JSON Lines, 16 enqueuers)\n\n| run | accepted in |\n|---|---|\n")
	for run := range 3 {
		t0 := time.Now()
		if _, err := c.SubmitBatch(ctx, items, client.BatchOptions{}); err != nil {
			return err
		}
		d := time.Since(t0)
		fmt.Fprintf(b, "| %d | %s |\n", run+1, msf(d))
		if d >= 2*time.Second {
			rep.note("clients: a 10,000-item batch took %s to accept (goal < 2 s)", msf(d))
		}
	}
	b.WriteString("\n")
	return nil
}
