package api_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/tasks"
)

// Cancels racing with completion: each job ends succeeded or cancelled,
// and the same in every place that says so: GET, asynq's own state, and
// the webhook sent (once). No cancelled job is run again.
func TestCancelRacingCompletion(t *testing.T) {
	rdb, _ := redistest.Open(t)
	rc := newReceiver(0)
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	e := newEnvOn(t, rdb, api.Options{Webhooks: true, WebhookAllowPrivate: true})
	up := startWorker(t, rdb, 60*time.Millisecond)
	const n = 40
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = e.submit(t, fmt.Sprintf(`{"name":"Race %d","callback_url":%q}`, i, hook.URL), nil)
		wg.Go(func() {
			time.Sleep(time.Duration(rand.Int64N(int64(150 * time.Millisecond))))
			r := e.do(t, request{method: http.MethodDelete, path: "/api/jobs/" + ids[i]})
			if r.status != http.StatusOK && r.status != http.StatusAccepted && r.status != http.StatusConflict {
				t.Errorf("DELETE: %d %s", r.status, r.body)
			}
		})
	}
	wg.Wait()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	want := map[tasks.Status]asynq.TaskState{tasks.StatusSucceeded: asynq.TaskStateCompleted, tasks.StatusCancelled: asynq.TaskStateArchived}
	counts := map[tasks.Status]int{}
	for _, id := range ids {
		j := decodeJob(t, e.get(t, "/api/jobs/"+id+"?wait=20s").body)
		state, ok := want[j.Status]
		if !ok {
			t.Fatalf("job %s ended %s: %+v", id, j.Status, j.Error)
		}
		counts[j.Status]++
		testutil.Eventually(t, 10*time.Second, "asynq to agree on job "+id, func() bool {
			info, err := insp.GetTaskInfo(tasks.Queue, id)
			return err == nil && info.State == state
		})
		if again := decodeJob(t, e.get(t, "/api/jobs/"+id).body); again.Status != j.Status {
			t.Errorf("job %s: %s, then %s", id, j.Status, again.Status)
		}
		testutil.Eventually(t, 10*time.Second, "job "+id+"'s webhook", func() bool {
			bodies, _ := rc.snapshot()
			return len(bodies["msg_"+id]) > 0
		})
		bodies, bad := rc.snapshot()
		if sent := decodeJob(t, []byte(bodies["msg_"+id][0])); sent.Status != j.Status || bad != 0 {
			t.Errorf("job %s is %s but its webhook said %s", id, j.Status, sent.Status)
		}
	}
	calls := 0
	for _, c := range up.Calls() {
		if c.Method == http.MethodPost {
			calls++
		}
	}
	if calls > counts[tasks.StatusSucceeded]+counts[tasks.StatusCancelled] || calls < counts[tasks.StatusSucceeded] {
		t.Errorf("%d upstream calls for %v", calls, counts)
	}
	t.Logf("outcomes: %v, upstream calls %d", counts, calls)
}
