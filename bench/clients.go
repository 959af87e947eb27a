package main

// Part "clients" (issue #12): how soon a client learns that its job is
// done, by poll, long-poll, SSE and webhook; how long a new job waits for
// an idle worker, and what a shorter TaskCheckInterval costs an idle
// Redis; what 1,000 waiters cost a keyq api process; how long a 10,000-item
// batch takes to accept. Run: go run ./bench -parts clients -out bench/RESULTS-clients.md

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/webhook"
	"github.com/keyq/keyq/worker"
)

const benchSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// clientsStack is an API on a local listener and one worker.
type clientsStack struct {
	rdb, wrdb *redis.Client
	srv       *api.Server
	http      *httptest.Server
	w         *worker.Worker
	up        *httptest.Server
}

func startClientsStack(env *benchEnv, check time.Duration, latency time.Duration) (*clientsStack, error) {
	s := &clientsStack{rdb: env.newRDB(), wrdb: env.newRDB()}
	var err error
	if s.srv, err = api.New(s.rdb, api.Options{Logger: quiet, Webhooks: true, WebhookAllowPrivate: true}); err != nil {
		return nil, err
	}
	s.http = httptest.NewServer(s.srv.Handler())
	s.up = httptest.NewServer(geminifake.New(geminifake.Options{Latency: latency}))
	keys, _, _ := keyring.ParseKeys("AIzaSyEXAMPLE-bench-clients-key-00001")
	ring, err := keyring.New(s.wrdb, keys, keyring.Options{})
	if err != nil {
		return nil, err
	}
	gem, _ := gemini.New(gemini.Options{BaseURL: s.up.URL, Model: model, Timeout: 10 * time.Second})
	h, err := worker.NewHandler(gem, ring, worker.HandlerOptions{Logger: quiet})
	if err != nil {
		return nil, err
	}
	secrets, _ := webhook.ParseSecrets(benchSecret)
	s.w, err = worker.New(s.wrdb, h, worker.Options{Concurrency: 50, TaskCheckInterval: check, Logger: quiet,
		WebhookSecrets: secrets, WebhookAllowPrivate: true, ShutdownTimeout: time.Second})
	if err != nil {
		return nil, err
	}
	return s, s.w.Start()
}

func (s *clientsStack) stop() {
	s.w.Shutdown()
	s.http.Close()
	s.up.Close()
	s.srv.Close()
	s.rdb.Close()
	s.wrdb.Close()
}

// finals records, from the events channel, when each job's result was
// stored (the completed_at the worker publishes) and when it started
// running (when the running event arrived).
type finals struct {
	mu      sync.Mutex
	stored  map[string]time.Time
	running map[string]time.Time
}

func watchFinals(ctx context.Context, rdb *redis.Client) (*finals, error) {
	f := &finals{stored: map[string]time.Time{}, running: map[string]time.Time{}}
	ps := rdb.Subscribe(ctx, jobstore.EventsChannel)
	if _, err := ps.Receive(ctx); err != nil {
		return nil, err
	}
	go func() {
		for m := range ps.Channel() {
			now := time.Now()
			ev, err := jobstore.ParseEvent(m.Payload)
			if err != nil {
				continue
			}
			var j tasks.Job
			_ = json.Unmarshal(ev.Job, &j)
			f.mu.Lock()
			switch {
			case j.Status == tasks.StatusRunning && f.running[j.ID].IsZero():
				f.running[j.ID] = now
			case j.CompletedAt != nil:
				f.stored[j.ID] = *j.CompletedAt
			}
			f.mu.Unlock()
		}
	}()
	go func() { <-ctx.Done(); ps.Close() }()
	return f, nil
}

func (f *finals) get(m map[string]time.Time, id string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[id]
}

func partClients(ctx context.Context, env *benchEnv, rep *report) error {
	var b strings.Builder
	b.WriteString("## clients: learning that a job is done (issue #12)\n\n")
	if err := clientsLatency(ctx, env, rep, &b); err != nil {
		return err
	}
	if err := clientsPickup(ctx, env, rep, &b); err != nil {
		return err
	}
	if err := clientsBatch(ctx, env, rep, &b); err != nil {
		return err
	}
	if err := clientsWaiterMemory(ctx, env, rep, &b); err != nil {
		return err
	}
	rep.add(b.String())
	return nil
}

// await is get, waiting up to a second for the event to be read.
func (f *finals) await(m map[string]time.Time, id string) time.Time {
	for range 200 {
		if t := f.get(m, id); !t.IsZero() {
			return t
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}
}

func pctl(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p/100)]
}

func msf(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
