package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/usage"
	"github.com/keyq/keyq/worker"
)

// tripCounter is a go-redis hook that lists the round trips made in one
// job's context (asynq's own, made in its server's contexts, are not).
type tripCounter struct {
	mu    sync.Mutex
	job   string
	trips []string
}

func (c *tripCounter) add(ctx context.Context, cmds []redis.Cmder) {
	if id, _ := asynq.GetTaskID(ctx); id == "" || id != c.jobID() {
		return
	}
	var names []string
	for _, cmd := range cmds {
		names = append(names, cmd.Name())
	}
	c.mu.Lock()
	c.trips = append(c.trips, strings.Join(names, "+"))
	c.mu.Unlock()
}

func (c *tripCounter) jobID() string { c.mu.Lock(); defer c.mu.Unlock(); return c.job }

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(ctx, []redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}
func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(ctx, cmds)
		return next(ctx, cmds)
	}
}

// A job that succeeds at its first attempt costs keyq three round trips
// (once Redis knows the scripts): the run's start (the cancel mark, any
// earlier result, "running": one script), the pick, and the end: the
// result with the key's success report, the token usage and the job's
// succeeded state, one pipeline. Each of the report, the usage, "running"
// and the final state had a round trip of its own (issue 11).
func TestASuccessfulJobCostsThreeRoundTrips(t *testing.T) {
	rdb, _ := redistest.Open(t)
	_, base := faketest.Start(t, geminifake.Options{})
	keys, _, err := keyring.ParseKeys(strings.Join(secrets, ","))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.New(rdb, keys, keyring.Options{RPM: 1000})
	if err != nil {
		t.Fatal(err)
	}
	gem, err := gemini.New(gemini.Options{BaseURL: base, Model: "gemini-2.5-flash", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	store := usage.NewStore(rdb, "")
	h, err := worker.NewHandler(gem, ring, worker.HandlerOptions{Usage: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Announce(context.Background()); err != nil {
		t.Fatal(err)
	}
	trips := &tripCounter{job: fmt.Sprintf("%032x", time.Now().UnixNano())}
	rdb.AddHook(trips)
	w, err := worker.New(rdb, h, worker.Options{Concurrency: 1, PollInterval: 50 * time.Millisecond, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	e := &env{t: t, rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), inspect: asynq.NewInspectorFromRedisClient(rdb)}
	run := func(id string) {
		task, err := tasks.NewAnalyzeCharacterTask(tasks.AnalyzeCharacter{Name: "Counted"}, asynq.TaskID(id),
			asynq.Queue(tasks.Queue), asynq.MaxRetry(2), asynq.Retention(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		if info := e.await(id, asynq.TaskStateCompleted); len(info.Result) == 0 {
			t.Errorf("job %s completed without its result", id)
		}
	}
	// The first job meets a Redis that knows none of the scripts: the
	// pipelined EVALSHAs fail with NOSCRIPT and are run again, once.
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	run("warm-" + trips.job)
	run(trips.job)
	w.Shutdown() // the final state is published before the run returns; stop to read a settled list

	trips.mu.Lock()
	got := trips.trips
	trips.mu.Unlock()
	if len(got) != 3 {
		t.Errorf("%d round trips for one successful job, want 3:\n%s", len(got), strings.Join(got, "\n"))
	}
	if n := len(got); n > 0 && !strings.Contains(got[n-1], "hincrby") {
		t.Errorf("the result's write %q does not carry the usage", got[n-1])
	}
	// Published twice, running and succeeded: not again by the middleware.
	if st, err := jobstore.New(rdb).State(context.Background(), trips.job); err != nil || st.Seq != 2 || st.Final != tasks.StatusSucceeded {
		t.Errorf("job state %+v, %v; want seq 2 (running, succeeded), final succeeded", st, err)
	}
	rows, err := store.Query(context.Background(), store.Today(), store.Today(), "key", nil, nil)
	var calls int64
	for _, r := range rows {
		calls += r.Counts[usage.KindCalls]
	}
	if err != nil || calls != 2 {
		t.Errorf("usage after two jobs: %+v, %v; want two calls", rows, err)
	}
	page, err := ring.Admin().Page(context.Background(), keyring.Query{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var successes int64
	for _, k := range page.Keys {
		successes += k.Successes
	}
	if successes != 2 {
		t.Errorf("%d successes reported over the pool after two jobs, want 2", successes)
	}
}
