package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/tasks"
)

// After Redis lost its data (FLUSHALL stands for a restart without
// persistence), a job accepted with a 202 must be pollable at once by the
// same running API: asynq's client never registers the queue again
// (issue 10, item 1).
func TestJobsArePollableAfterRedisLostItsData(t *testing.T) {
	e := newEnv(t, api.Options{})
	accept := func() string {
		r := e.post(t, `{"name":"Before and after"}`, nil)
		var acc api.JobAccepted
		if r.status != http.StatusAccepted || json.Unmarshal(r.body, &acc) != nil {
			t.Fatalf("POST: %d %s", r.status, r.body)
		}
		return acc.ID
	}
	if j := e.job(t, accept()); j.Status != tasks.StatusQueued {
		t.Fatalf("before the flush: %+v", j)
	}
	if err := e.rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	id := accept()
	if j := e.job(t, id); j.ID != id || j.Status != tasks.StatusQueued {
		t.Errorf("after the flush: %+v, want the new job queued", j)
	}
}

// A task hash holding only a result (a result written for a task that was
// gone, asynq #1167) answered 503 "Redis unreachable" forever. It is no
// job: 404, and the orphan is deleted (issue 10, item 2).
func TestOrphanTaskHashIsNotFound(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.post(t, `{"name":"registers the queue"}`, nil)
	const id = "0123456789abcdef0123456789abcdef"
	key := "asynq:{" + tasks.Queue + "}:t:" + id
	if err := e.rdb.HSet(context.Background(), key, "result", `{"analysis":{}}`).Err(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := e.get(t, "/api/jobs/"+id); r.status != http.StatusNotFound {
			t.Fatalf("GET an orphan: %d %s, want 404", r.status, r.body)
		}
	}
	if n := e.rdb.Exists(context.Background(), key).Val(); n != 0 {
		t.Error("the orphan hash is still there")
	}
}
