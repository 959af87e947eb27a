package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/tasks"
)

func postBatch(t *testing.T, e *env, ct, query, body string, h map[string]string) response {
	t.Helper()
	hh := map[string]string{}
	for k, v := range h {
		hh[k] = v
	}
	return e.do(t, request{method: http.MethodPost, path: "/api/batches" + query, contentType: ct, header: hh, body: strings.NewReader(body)})
}

// A bad item is named by position and custom_id, and nothing is enqueued.
func TestBatchRefusesABadItem(t *testing.T) {
	rdb, _ := redistest.Open(t)
	e := newEnvOn(t, rdb, api.Options{})
	r := postBatch(t, e, "application/json", "", `[{"custom_id":"a","name":"Ada"},{"custom_id":"b","name":""}]`, nil)
	var er struct{ Error api.Error }
	_ = json.Unmarshal(r.body, &er)
	if r.status != http.StatusBadRequest || er.Error.Field != "items[1].name" || !strings.Contains(er.Error.Message, `custom_id "b"`) {
		t.Fatalf("bad item: %d %s", r.status, r.body)
	}
	for _, c := range []struct{ ct, body string }{
		{"application/json", `[{"name":"Ada","nope":1}]`},
		{"application/json", `[]`},
		{"application/x-ndjson", "{\"name\":\"Ada\",\"custom_id\":\"x\"}\n{\"name\":\"Bo\",\"custom_id\":\"x\"}\n"},
		{"text/plain", `[{"name":"Ada"}]`},
	} {
		if r := postBatch(t, e, c.ct, "", c.body, nil); r.status/100 != 4 {
			t.Errorf("%s %s: %d", c.ct, c.body, r.status)
		}
	}
	if n, _ := rdb.Keys(t.Context(), "asynq:{keyq}:t:*").Result(); len(n) != 0 {
		t.Errorf("%d tasks enqueued from refused batches", len(n))
	}
}

// A batch in JSON Lines runs; its counts, its results in order and its
// webhook when every item is final. Cancelling a batch of queued items
// cancels them all.
func TestBatchRunsAndCancels(t *testing.T) {
	rdb, _ := redistest.Open(t)
	rc := newReceiver(0)
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	e := newEnvOn(t, rdb, api.Options{Webhooks: true, WebhookAllowPrivate: true})
	var lines strings.Builder
	for i := range 5 {
		fmt.Fprintf(&lines, "{\"custom_id\":\"c%d\",\"name\":\"Character %d\"}\n", i, i)
	}
	cancelMe := postBatch(t, e, "application/x-ndjson", "", lines.String(), nil)
	var cb tasks.BatchAccepted
	_ = json.Unmarshal(cancelMe.body, &cb)
	r := e.do(t, request{method: http.MethodDelete, path: "/api/batches/" + cb.ID})
	var b tasks.Batch
	_ = json.Unmarshal(r.body, &b)
	if r.status != http.StatusOK || b.Counts[tasks.StatusCancelled] != 5 || !b.Done {
		t.Fatalf("cancel a queued batch: %d %s", r.status, r.body)
	}

	startWorker(t, rdb, 0)
	acc := postBatch(t, e, "application/x-ndjson", "?callback_url="+hook.URL, lines.String(), nil)
	var ba tasks.BatchAccepted
	if err := json.Unmarshal(acc.body, &ba); err != nil || acc.status != http.StatusAccepted || ba.Total != 5 {
		t.Fatalf("POST batch: %d %s", acc.status, acc.body)
	}
	testutil.Eventually(t, 20*time.Second, "the batch to finish", func() bool {
		_ = json.Unmarshal(e.get(t, "/api/batches/"+ba.ID).body, &b)
		return b.Done && b.Counts[tasks.StatusSucceeded] == 5
	})
	res := e.get(t, "/api/batches/"+ba.ID+"/results")
	var got []string
	for line := range strings.Lines(string(res.body)) {
		var br tasks.BatchResult
		if err := json.Unmarshal([]byte(line), &br); err != nil || br.Status != tasks.StatusSucceeded || br.Result == nil {
			t.Fatalf("result line %q: %v", line, err)
		}
		got = append(got, br.CustomID)
	}
	if strings.Join(got, ",") != "c0,c1,c2,c3,c4" {
		t.Errorf("results in order: %v", got)
	}
	testutil.Eventually(t, 10*time.Second, "the batch webhook", func() bool {
		bodies, _ := rc.snapshot()
		return len(bodies["msg_batch_"+ba.ID]) == 1
	})
	if ins := asynq.NewInspectorFromRedisClient(rdb); ins != nil {
		if q, err := ins.GetQueueInfo(tasks.Queue); err != nil || q.Archived != 5 {
			t.Errorf("archived (cancelled) jobs: %+v %v", q, err)
		}
	}
}
