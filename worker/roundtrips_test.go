package worker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/usage"
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

// startCounted is a worker with a usage store, the ring on RPM budgets,
// and hooks on its Redis client.
func startCounted(t *testing.T, hooks ...redis.Hook) *env {
	return start(t, setup{usage: true, hooks: hooks, ring: keyring.Options{RPM: 1000}})
}

// run enqueues a job (with headers) and waits until it succeeded with a
// result.
func (o *env) run(id string, headers map[string]string) {
	o.t.Helper()
	task, err := tasks.NewAnalyzeCharacterTask(tasks.AnalyzeCharacter{Name: "Counted"})
	if err != nil {
		o.t.Fatal(err)
	}
	task = asynq.NewTaskWithHeaders(task.Type(), task.Payload(), headers,
		asynq.TaskID(id), asynq.Queue(tasks.Queue), asynq.MaxRetry(2), asynq.Retention(time.Hour))
	if _, err := o.client.Enqueue(task); err != nil {
		o.t.Fatal(err)
	}
	if info := o.await(id, asynq.TaskStateCompleted); len(info.Result) == 0 {
		o.t.Errorf("job %s completed without its result", id)
	}
}

// seq is how many states of job id were published.
func (o *env) seq(id string) int64 {
	st, err := jobstore.New(o.rdb).State(context.Background(), id)
	if err != nil {
		o.t.Fatal(err)
	}
	return st.Seq
}

// A job that succeeds at its first attempt costs keyq three round trips
// (once Redis knows the scripts): the run's start (the cancel mark, any
// earlier result, "running": one script), the pick, and the end: the
// result with the key's success report, the token usage and the job's
// succeeded state, one pipeline. Each of the report, the usage, "running"
// and the final state had a round trip of its own (issue 11).
func TestASuccessfulJobCostsThreeRoundTrips(t *testing.T) {
	trips := &tripCounter{job: fmt.Sprintf("%032x", time.Now().UnixNano())}
	o := startCounted(t, trips)
	// The first job meets a Redis that knows none of the scripts: the
	// pipelined EVALSHAs fail with NOSCRIPT and are run again, once.
	if err := o.rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	warm := "warm-" + trips.job
	o.run(warm, nil)
	o.run(trips.job, nil)
	o.await(trips.job, asynq.TaskStateCompleted)

	trips.mu.Lock()
	got := trips.trips
	trips.mu.Unlock()
	if len(got) != 3 {
		t.Errorf("%d round trips for one successful job, want 3:\n%s", len(got), strings.Join(got, "\n"))
	}
	if n := len(got); n > 0 && !strings.Contains(got[n-1], "hincrby") {
		t.Errorf("the result's write %q does not carry the usage", got[n-1])
	}
	// Published twice each, running and succeeded: not again by the
	// middleware, nor by the NOSCRIPT re-runs.
	for _, id := range []string{warm, trips.job} {
		if n := o.seq(id); n != 2 {
			t.Errorf("job %s: %d states published, want 2 (running, succeeded)", id, n)
		}
	}
	rows, err := o.usage.Query(context.Background(), o.usage.Today(), o.usage.Today(), "key", nil, nil)
	var calls int64
	for _, r := range rows {
		calls += r.Counts[usage.KindCalls]
	}
	if err != nil || calls != 2 {
		t.Errorf("usage after two jobs: %+v, %v; want two calls", rows, err)
	}
	page, err := o.ring.Admin().Page(context.Background(), keyring.Query{Limit: 10})
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

// lostReply lets a job's end-of-run pipeline reach Redis once, then fails
// it as a read timeout would: the commands ran, their replies were lost.
type lostReply struct {
	job  string
	done atomic.Bool
}

func (l *lostReply) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (l *lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (l *lostReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if id, _ := asynq.GetTaskID(ctx); id != l.job || len(cmds) < 3 || !l.done.CompareAndSwap(false, true) {
			return next(ctx, cmds)
		}
		_ = next(ctx, cmds)
		err := errors.New("read tcp: i/o timeout (the reply was lost)")
		for _, c := range cmds {
			c.SetErr(err)
		}
		return err
	}
}

// The end of a run whose reply was lost is written again: the job is
// published succeeded once, and its batch still gets its webhook (found in
// review: the state was published twice and the batch's webhook lost).
func TestALostReplyPublishesOnceAndCompletesTheBatch(t *testing.T) {
	id := fmt.Sprintf("%032x", time.Now().UnixNano())
	lost := &lostReply{job: id}
	o := startCounted(t, lost)
	o.run("warm-"+id, nil) // scripts loaded: the lost pipeline's EVALSHAs run
	const batch = "b1"
	js := jobstore.New(o.rdb)
	if err := js.CreateBatch(context.Background(), jobstore.BatchRecord{ID: batch, Callback: "http://example.invalid/", TTL: time.Hour, Created: time.Now()},
		[]jobstore.BatchEntry{{JobID: id}}); err != nil {
		t.Fatal(err)
	}
	o.run(id, map[string]string{tasks.HeaderBatch: batch})
	if !lost.done.Load() {
		t.Fatal("the end-of-run pipeline was never seen")
	}
	if n := o.seq(id); n != 2 {
		t.Errorf("%d states published, want 2 (running, succeeded once)", n)
	}
	testutil.Eventually(t, 5*time.Second, "the batch's webhook to be enqueued", func() bool {
		_, err := o.inspect.GetTaskInfo(tasks.WebhookQueue, "msg_batch_"+batch)
		return err == nil
	})
	// The lost pipeline ran: its usage counts, and is not counted again.
	if n := o.calls(); n != 2 {
		t.Errorf("usage: %d calls after two jobs, want 2", n)
	}
}

// calls is the day's usage count of calls, over every key.
func (o *env) calls() int64 {
	rows, err := o.usage.Query(context.Background(), o.usage.Today(), o.usage.Today(), "key", nil, nil)
	if err != nil {
		o.t.Fatal(err)
	}
	var n int64
	for _, r := range rows {
		n += r.Counts[usage.KindCalls]
	}
	return n
}

// unreachable fails a job's first end-of-run pipeline as a dial error
// would, without sending it.
type unreachable struct{ lostReply }

func (u *unreachable) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if id, _ := asynq.GetTaskID(ctx); id != u.job || len(cmds) < 3 || !u.done.CompareAndSwap(false, true) {
			return next(ctx, cmds)
		}
		err := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		for _, c := range cmds {
			c.SetErr(err)
		}
		return err
	}
}

// A result write that never reached Redis is tried again with the key's
// report and the usage: they are counted once, not lost (found in review).
func TestAnUnsentWriteKeepsItsBookkeeping(t *testing.T) {
	id := fmt.Sprintf("%032x", time.Now().UnixNano())
	u := &unreachable{lostReply{job: id}}
	o := startCounted(t, u)
	o.run(id, nil)
	if !u.done.Load() {
		t.Fatal("the end-of-run pipeline was never seen")
	}
	if n := o.calls(); n != 1 {
		t.Errorf("usage: %d calls after one job, want 1", n)
	}
	if n := o.seq(id); n != 2 {
		t.Errorf("%d states published, want 2", n)
	}
}
