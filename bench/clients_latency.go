package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/keyq/keyq/client"
	"github.com/keyq/keyq/tasks"
)

// latencySamples is how many jobs each way of waiting follows.
const latencySamples = 200

// clientsLatency measures, per way of waiting, the time from a job's result
// being stored (the worker's completed_at) to the client having it.
func clientsLatency(ctx context.Context, env *benchEnv, rep *report, b *strings.Builder) error {
	st, err := startClientsStack(env, 20*time.Millisecond, 150*time.Millisecond)
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
	hooks := newHookTimes()
	hookSrv := httptest.NewServer(hooks)
	defer hookSrv.Close()
	c, _ := client.New(st.http.URL, client.Options{Poll: time.Second, HTTPClient: &http.Client{Timeout: time.Minute}})
	ways := []struct {
		name, goal string
		limit      time.Duration
		wait       func(id string) (time.Time, error)
	}{
		{"poll every 1 s (GET)", "", 0, func(id string) (time.Time, error) { return pollEvery(ctx, c, id, time.Second) }},
		{"long-poll (GET ?wait=)", "p99 < 50 ms", 50 * time.Millisecond, func(id string) (time.Time, error) { _, err := c.Wait(ctx, id, nil); return time.Now(), err }},
		{"SSE (GET /events)", "p99 < 50 ms", 50 * time.Millisecond, func(id string) (time.Time, error) { _, err := c.Follow(ctx, id, nil); return time.Now(), err }},
		{"webhook", "p99 < 200 ms", 200 * time.Millisecond, func(id string) (time.Time, error) { return hooks.await(ctx, id) }},
	}
	fmt.Fprintf(b, "### From result stored to client, %d jobs each (150 ms upstream, 10 followed at once)\n\n", latencySamples)
	b.WriteString("| way | p50 | p99 | max | goal |\n|---|---|---|---|---|\n")
	for _, w := range ways {
		cb := ""
		if w.name == "webhook" {
			cb = hookSrv.URL
		}
		ds, err := followMany(ctx, c, f, cb, w.wait)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		p99 := pctl(ds, 99)
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", w.name, msf(pctl(ds, 50)), msf(p99), msf(pctl(ds, 100)), w.goal)
		if w.limit > 0 && p99 >= w.limit {
			rep.note("clients: %s p99 %s misses the goal (%s)", w.name, msf(p99), w.goal)
		}
	}
	b.WriteString("\n")
	return nil
}

// followMany submits latencySamples jobs, 10 at a time, and follows each
// with wait; it returns each job's delay from stored to received.
func followMany(ctx context.Context, c *client.Client, f *finals, callback string, wait func(string) (time.Time, error)) ([]time.Duration, error) {
	var (
		mu    sync.Mutex
		ds    []time.Duration
		first error
		wg    sync.WaitGroup
		next  = make(chan int)
	)
	for range 10 {
		wg.Go(func() {
			for range next {
				acc, err := c.SubmitAnalyzeCharacter(ctx, tasks.AnalyzeCharacter{Name: "Bench"}, client.SubmitOptions{CallbackURL: callback})
				var got time.Time
				if err == nil {
					got, err = wait(acc.ID)
				}
				stored := f.await(f.stored, acc.ID) // the bench's own subscriber may read the event after the client
				mu.Lock()
				if err != nil || stored.IsZero() {
					first = cmpErr(first, fmt.Errorf("job %s: %v (stored %v)", acc.ID, err, stored))
				} else {
					ds = append(ds, got.Sub(stored))
				}
				mu.Unlock()
			}
		})
	}
	for i := range latencySamples {
		next <- i
	}
	close(next)
	wg.Wait()
	return ds, first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// pollEvery GETs the job every d until it is final.
func pollEvery(ctx context.Context, c *client.Client, id string, d time.Duration) (time.Time, error) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		j, err := c.Get(ctx, id)
		if err != nil {
			return time.Time{}, err
		}
		if j.Status.Final() {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-t.C:
		}
	}
}

// hookTimes is a webhook receiver recording when each job's webhook came.
type hookTimes struct {
	mu   sync.Mutex
	at   map[string]time.Time
	wake chan struct{}
}

func newHookTimes() *hookTimes {
	return &hookTimes{at: map[string]time.Time{}, wake: make(chan struct{}, 1)}
}

func (h *hookTimes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	body, _ := io.ReadAll(r.Body)
	var j tasks.Job
	_ = json.Unmarshal(body, &j)
	h.mu.Lock()
	if h.at[j.ID].IsZero() {
		h.at[j.ID] = now
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *hookTimes) await(ctx context.Context, id string) (time.Time, error) {
	deadline := time.After(time.Minute)
	for {
		h.mu.Lock()
		t := h.at[id]
		h.mu.Unlock()
		if !t.IsZero() {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-deadline:
			return t, fmt.Errorf("no webhook for %s in a minute", id)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
