package jobstore_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/internal/jobstore"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/tasks"
)

func TestOverlay(t *testing.T) {
	marked := func(while string) jobstore.State { return jobstore.State{Cancelled: true, CancelledWhile: while} }
	for _, c := range []struct {
		asynq tasks.Status
		st    jobstore.State
		want  tasks.Status
	}{
		{tasks.StatusQueued, jobstore.State{}, tasks.StatusQueued},
		{tasks.StatusQueued, marked("pending"), tasks.StatusCancelled},
		{tasks.StatusRetrying, marked("active"), tasks.StatusCancelled},  // will be refused
		{tasks.StatusFailed, marked("pending"), tasks.StatusCancelled},   // the API archived it
		{tasks.StatusFailed, marked("active"), tasks.StatusFailed},       // the run failed before the cancel
		{tasks.StatusSucceeded, marked("active"), tasks.StatusSucceeded}, // the success stands
		{tasks.StatusRunning, marked("active"), tasks.StatusRunning},     // being cut
		{tasks.StatusRetrying, jobstore.State{Final: tasks.StatusSucceeded, Cancelled: true}, tasks.StatusSucceeded},
		{tasks.StatusFailed, jobstore.State{Final: tasks.StatusCancelled, Cancelled: true, CancelledWhile: "active"}, tasks.StatusCancelled},
	} {
		if got := jobstore.Overlay(c.asynq, c.st); got != c.want {
			t.Errorf("Overlay(%s, %+v) = %s, want %s", c.asynq, c.st, got, c.want)
		}
	}
}

// Pages are newest first, a cursor resumes exactly after its entry even
// among entries of the same score, and owners do not mix.
func TestIndexPages(t *testing.T) {
	rdb, _ := redistest.Open(t)
	s := jobstore.New(rdb)
	ctx := t.Context()
	now := time.Now().UnixMicro()
	var jobs []jobstore.Indexed
	for i := range 7 {
		jobs = append(jobs, jobstore.Indexed{ID: string(rune('a' + i)), Score: now + int64(i/3)}) // ties
	}
	if err := s.Index(ctx, "owner1", jobs, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Index(ctx, "owner2", []jobstore.Indexed{{ID: "z", Score: now}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	var got string
	var after *jobstore.Cursor
	for {
		page, err := s.Page(ctx, "owner1", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got += e.ID
		}
		if len(page) < 2 {
			break
		}
		c, err := jobstore.ParseCursor(jobstore.Cursor{Score: page[1].Score, ID: page[1].ID}.String())
		if err != nil {
			t.Fatal(err)
		}
		after = &c
	}
	if got != "gfedcba" {
		t.Errorf("pages: %q, want gfedcba", got)
	}
	if _, err := jobstore.ParseCursor("nonsense"); err == nil {
		t.Error("a bad cursor parsed")
	}
}

func TestParseEvent(t *testing.T) {
	ev, err := jobstore.ParseEvent(`7 abc {"id":"abc"}`)
	if err != nil || ev.Seq != 7 || ev.ID != "abc" || string(ev.Job) != `{"id":"abc"}` {
		t.Errorf("%+v %v", ev, err)
	}
	if _, err := jobstore.ParseEvent("x"); err == nil {
		t.Error("a malformed event parsed")
	}
}

// Start publishes "running" only for a run that goes ahead: not for a job
// marked cancelled, nor for one whose earlier run stored its result (that
// result is returned instead).
func TestStart(t *testing.T) {
	rdb, _ := redistest.Open(t)
	s := jobstore.New(rdb)
	ctx := t.Context()
	sub := rdb.Subscribe(ctx, jobstore.EventsChannel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // subscribed
		t.Fatal(err)
	}
	id := func(name string) string { return t.Name() + "-" + name } // the channel is Redis-wide
	running := func(name string) tasks.Job { return tasks.Job{ID: id(name), Type: "t", Status: tasks.StatusRunning} }
	if err := rdb.HSet(ctx, jobstore.JobKey(id("cancelled")), "cancelled_at", 1).Err(); err != nil {
		t.Fatal(err)
	}
	// "done" stored its result and was then cancelled: the success stands.
	if err := rdb.HSet(ctx, jobstore.TaskKey(id("done")), "msg", "x", "result", `{"a":1}`).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, jobstore.JobKey(id("done")), "cancelled_at", 1).Err(); err != nil {
		t.Fatal(err)
	}
	if c, r, err := s.Start(ctx, running("cancelled"), time.Hour); err != nil || !c || r != nil {
		t.Errorf("Start of a cancelled job = %v, %q, %v; want cancelled", c, r, err)
	}
	if c, r, err := s.Start(ctx, running("done"), time.Hour); err != nil || c || string(r) != `{"a":1}` {
		t.Errorf("Start of a job with a stored result = %v, %q, %v; want the result", c, r, err)
	}
	if c, r, err := s.Start(ctx, running("fresh"), time.Hour); err != nil || c || r != nil {
		t.Errorf("Start of a fresh job = %v, %q, %v; want a start", c, r, err)
	}
	for {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := jobstore.ParseEvent(msg.Payload)
		if err != nil || !strings.HasPrefix(ev.ID, t.Name()) {
			continue // another test's
		}
		var j tasks.Job
		if err := json.Unmarshal(ev.Job, &j); err != nil || ev.ID != id("fresh") || ev.Seq != 1 || j.Status != tasks.StatusRunning {
			t.Errorf("first event %q, want the fresh job's running, seq 1", msg.Payload)
		}
		break
	}
	for _, name := range []string{"cancelled", "done"} {
		if st, _ := s.State(ctx, id(name)); st.Seq != 0 {
			t.Errorf("%s: seq %d after Start, want 0 (nothing published)", name, st.Seq)
		}
	}
}

// A final state published again (a lost reply, a retried write) is not
// published twice, and says again that it completed its batch, for the
// caller to enqueue the batch's webhook (issue 11 review).
func TestAFinalStateIsPublishedOnce(t *testing.T) {
	rdb, _ := redistest.Open(t)
	s := jobstore.New(rdb)
	ctx := t.Context()
	batch, id := t.Name()+"-b", t.Name()+"-j"
	if err := s.CreateBatch(ctx, jobstore.BatchRecord{ID: batch, TTL: time.Hour, Created: time.Now()}, []jobstore.BatchEntry{{JobID: id}}); err != nil {
		t.Fatal(err)
	}
	j := tasks.Job{ID: id, Type: "t", Status: tasks.StatusSucceeded}
	for i := range 2 {
		seq, complete, err := s.Publish(ctx, j, batch, time.Hour)
		if err != nil || seq != 1 || !complete {
			t.Errorf("publish %d: seq %d, batch complete %v, %v; want 1, true", i+1, seq, complete, err)
		}
	}
	other := tasks.Job{ID: t.Name() + "-other", Type: "t", Status: tasks.StatusSucceeded}
	if _, complete, err := s.Publish(ctx, other, batch, time.Hour); err != nil || complete {
		t.Errorf("a job outside the batch's list: complete %v, %v; want false", complete, err)
	}
}

// A result is never written for a task that is gone: asynq's ResultWriter
// would leave an orphan hash holding only "result" (asynq #1167).
func TestNoResultForAGoneTask(t *testing.T) {
	rdb, _ := redistest.Open(t)
	s := jobstore.New(rdb)
	id := "0123456789abcdef0123456789abcdef"
	pipe := rdb.Pipeline()
	finish := s.QueueFinish(t.Context(), pipe, tasks.Job{ID: id, Type: "t", Status: tasks.StatusSucceeded}, "", time.Hour, []byte(`{}`))
	_, _ = pipe.Exec(t.Context())
	if _, _, err := finish.Result(t.Context()); !errors.Is(err, jobstore.ErrTaskGone) {
		t.Errorf("finishing a task that does not exist: %v, want ErrTaskGone", err)
	}
	if n, _ := rdb.Exists(t.Context(), jobstore.TaskKey(id)).Result(); n != 0 {
		t.Error("an orphan task hash was created")
	}
}
