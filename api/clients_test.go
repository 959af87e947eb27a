package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/tasks"
)

// Two API replicas on one Redis: a long-poll on replica B is woken by a job
// submitted through replica A and finished by a worker; an event stream on
// B sees every state in order, and a reconnect with the last id it saw
// replays nothing.
func TestWaitAndEventsAcrossReplicas(t *testing.T) {
	rdb, _ := redistest.Open(t)
	a := newEnvOn(t, rdb, api.Options{})
	b := newEnvOn(t, rdb, api.Options{})
	startWorker(t, rdb, 300*time.Millisecond)

	id := a.submit(t, clientJob, nil)
	events := make(chan []sseEvent, 1)
	go func() { events <- readEvents(t, b.http.URL+"/api/jobs/"+id+"/events", nil) }()
	r := b.get(t, "/api/jobs/"+id+"?wait=30s")
	j := decodeJob(t, r.body)
	if r.status != http.StatusOK || j.Status != tasks.StatusSucceeded || j.Result == nil {
		t.Fatalf("wait on replica B: %d %s", r.status, r.body)
	}
	evs := <-events
	if len(evs) < 2 || evs[len(evs)-1].event != "succeeded" {
		t.Fatalf("events: %+v", evs)
	}
	last := int64(-1)
	for _, ev := range evs {
		n, err := strconv.ParseInt(ev.id, 10, 64)
		if err != nil || n <= last {
			t.Fatalf("event ids not increasing: %+v", evs)
		}
		last = n
	}
	if again := readEvents(t, b.http.URL+"/api/jobs/"+id+"/events", map[string]string{"Last-Event-ID": evs[len(evs)-1].id}); len(again) != 0 {
		t.Errorf("a reconnect after the final event replayed %+v", again)
	}
	if again := readEvents(t, b.http.URL+"/api/jobs/"+id+"/events", nil); len(again) != 1 || again[0].event != "succeeded" {
		t.Errorf("a new stream of a final job: %+v", again)
	}
}

func TestWaitParameter(t *testing.T) {
	e := newEnv(t, api.Options{})
	id := e.submit(t, clientJob, nil)
	for _, bad := range []string{"x", "-1s", "1h2"} {
		if r := e.get(t, "/api/jobs/"+id+"?wait="+bad); r.status != http.StatusBadRequest {
			t.Errorf("wait=%s: %d", bad, r.status)
		}
	}
	// No worker: the wait ends with the job still queued.
	r := e.get(t, "/api/jobs/"+id+"?wait=1")
	if j := decodeJob(t, r.body); r.status != http.StatusOK || j.Status != tasks.StatusQueued {
		t.Errorf("wait=1 on a queued job: %d %s", r.status, r.body)
	}
}

// A queued job cancelled is never run; a repeat cancel answers the same;
// a job that ended answers 409; another token's job is 404.
func TestCancelQueuedAndFinished(t *testing.T) {
	rdb, _ := redistest.Open(t)
	e := newEnvOn(t, rdb, api.Options{Tokens: []string{"token-a-0123456789", "token-b-0123456789"}})
	ta := map[string]string{"Authorization": "Bearer token-a-0123456789", "Content-Type": "application/json"}
	tb := map[string]string{"Authorization": "Bearer token-b-0123456789"}
	id := e.submit(t, clientJob, ta)
	del := func(h map[string]string) response {
		return e.do(t, request{method: http.MethodDelete, path: "/api/jobs/" + id, header: h})
	}
	if r := del(tb); r.status != http.StatusNotFound {
		t.Errorf("another token's DELETE: %d", r.status)
	}
	if r := e.do(t, request{method: http.MethodGet, path: "/api/jobs/" + id, header: tb}); r.status != http.StatusNotFound {
		t.Errorf("another token's GET: %d", r.status)
	}
	for range 2 {
		r := del(ta)
		if j := decodeJob(t, r.body); r.status != http.StatusOK || j.Status != tasks.StatusCancelled || j.Error == nil || j.Error.Class != tasks.ClassCancelled {
			t.Fatalf("DELETE a queued job: %d %s", r.status, r.body)
		}
	}
	up := startWorker(t, rdb, 0)
	other := e.submit(t, clientJob, ta)
	e.awaitStatus(t, other, tasks.StatusSucceeded, ta)
	if n := len(up.Calls()); n != 1 {
		t.Errorf("%d upstream calls, want 1 (the cancelled job must not run)", n)
	}
	if r := e.do(t, request{method: http.MethodDelete, path: "/api/jobs/" + other, header: ta}); r.status != http.StatusConflict {
		t.Errorf("DELETE a succeeded job: %d %s", r.status, r.body)
	}
	if j := e.awaitStatus(t, id, tasks.StatusCancelled, ta); j.Result != nil {
		t.Errorf("cancelled job has a result")
	}
}

// A running job is cut in flight: 202, then cancelled, its upstream call
// not made again, and asynq archives it (never retried).
func TestCancelRunning(t *testing.T) {
	rdb, _ := redistest.Open(t)
	e := newEnvOn(t, rdb, api.Options{})
	up := startWorker(t, rdb, time.Second)
	id := e.submit(t, clientJob, nil)
	testutil.Eventually(t, 10*time.Second, "the upstream call to start", func() bool { return len(up.Calls()) == 1 })
	r := e.do(t, request{method: http.MethodDelete, path: "/api/jobs/" + id})
	if r.status != http.StatusAccepted && r.status != http.StatusOK {
		t.Fatalf("DELETE a running job: %d %s", r.status, r.body)
	}
	w := e.get(t, "/api/jobs/"+id+"?wait=20s")
	if j := decodeJob(t, w.body); j.Status != tasks.StatusCancelled {
		t.Fatalf("after the cancel: %s", w.body)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	testutil.Eventually(t, 10*time.Second, "asynq to archive the cancelled job", func() bool {
		info, err := insp.GetTaskInfo(tasks.Queue, id)
		return err == nil && info.State == asynq.TaskStateArchived
	})
	if n := len(up.Calls()); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
	if j := decodeJob(t, e.get(t, "/api/jobs/"+id).body); j.Status != tasks.StatusCancelled {
		t.Errorf("final: %+v", j)
	}
}

// A webhook is signed, retried with the same id and body after a 500, and
// its delivery shows on the job; callbacks to internal addresses are
// refused at submission unless allowed.
func TestWebhook(t *testing.T) {
	rdb, _ := redistest.Open(t)
	rc := newReceiver(1)
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	e := newEnvOn(t, rdb, api.Options{Webhooks: true, WebhookAllowPrivate: true})
	startWorker(t, rdb, 0)
	id := e.submit(t, fmt.Sprintf(`{"name":"Ada","callback_url":%q}`, hook.URL+"/hook"), nil)
	var j tasks.Job
	testutil.Eventually(t, 20*time.Second, "the webhook to be delivered", func() bool {
		j = decodeJob(t, e.get(t, "/api/jobs/"+id).body)
		return j.Webhook != nil && j.Webhook.State == tasks.WebhookDelivered
	})
	if j.Webhook.Attempts != 2 || j.Webhook.LastStatus != http.StatusOK {
		t.Errorf("webhook state: %+v", j.Webhook)
	}
	got, bad := rc.snapshot()
	bodies := got["msg_"+id]
	if bad != 0 || len(got) != 1 || len(bodies) != 2 || bodies[0] != bodies[1] {
		t.Fatalf("deliveries: %d bad, %v", bad, got)
	}
	if sent := decodeJob(t, []byte(bodies[0])); sent.Status != tasks.StatusSucceeded || sent.Result == nil || sent.ID != id {
		t.Errorf("webhook body: %s", bodies[0])
	}

	strict := newEnvOn(t, rdb, api.Options{Webhooks: true})
	for _, u := range []string{"http://127.0.0.1:9/x", "http://169.254.169.254/latest", "http://[::1]/", "ftp://example.com/"} {
		r := strict.post(t, fmt.Sprintf(`{"name":"Ada","callback_url":%q}`, u), nil)
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"field":"callback_url"`) {
			t.Errorf("callback %s: %d %s", u, r.status, r.body)
		}
	}
	off := newEnvOn(t, rdb, api.Options{})
	if r := off.post(t, `{"name":"Ada","callback_url":"https://example.com/"}`, nil); r.status != http.StatusBadRequest {
		t.Errorf("callback without webhooks: %d", r.status)
	}
}

// Lists are per token, newest first, paged by cursor, filtered by status.
func TestListJobs(t *testing.T) {
	e := newEnv(t, api.Options{Tokens: []string{"token-a-0123456789", "token-b-0123456789"}})
	ta := map[string]string{"Authorization": "Bearer token-a-0123456789", "Content-Type": "application/json"}
	tb := map[string]string{"Authorization": "Bearer token-b-0123456789", "Content-Type": "application/json"}
	var mine []string
	for range 5 {
		mine = append(mine, e.submit(t, clientJob, ta))
	}
	theirs := e.submit(t, clientJob, tb)
	e.do(t, request{method: http.MethodDelete, path: "/api/jobs/" + mine[1], header: ta})
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		r := e.do(t, request{method: http.MethodGet, path: "/api/jobs?limit=2&cursor=" + cursor, header: ta})
		var l tasks.JobList
		if err := json.Unmarshal(r.body, &l); err != nil || r.status != http.StatusOK {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		for _, j := range l.Jobs {
			seen = append(seen, j.ID)
		}
		if cursor = l.NextCursor; cursor == "" || page > 5 {
			break
		}
	}
	want := []string{mine[4], mine[3], mine[2], mine[1], mine[0]}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("token A's jobs newest first:\n got %v\nwant %v", seen, want)
	}
	r := e.do(t, request{method: http.MethodGet, path: "/api/jobs?status=cancelled", header: ta})
	var l tasks.JobList
	_ = json.Unmarshal(r.body, &l)
	if len(l.Jobs) != 1 || l.Jobs[0].ID != mine[1] {
		t.Errorf("cancelled jobs: %s", r.body)
	}
	r = e.do(t, request{method: http.MethodGet, path: "/api/jobs", header: tb})
	if !strings.Contains(string(r.body), theirs) || strings.Contains(string(r.body), mine[0]) {
		t.Errorf("token B's list: %s", r.body)
	}
	if r := e.do(t, request{method: http.MethodGet, path: "/api/jobs?limit=0", header: ta}); r.status != http.StatusBadRequest {
		t.Errorf("limit=0: %d", r.status)
	}
}
