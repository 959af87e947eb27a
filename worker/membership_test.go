package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/internal/testutil"
)

// Two workers, one lacking a key of the fleet: no job fails, the worker
// never calls with a key it does not hold, and it says once, clearly, that
// its keys differ (issue 11).
func TestAWorkerWithFewerKeysSaysSoOnce(t *testing.T) {
	e := start(t, setup{workers: 2, workerKeys: [][]string{secrets, secrets[:2]}})
	var ids []string
	for range 12 {
		ids = append(ids, e.enqueue("Mismatched"))
	}
	for _, id := range ids {
		e.await(id, asynq.TaskStateCompleted)
	}
	testutil.Eventually(t, 10*time.Second, "the short worker's warning", func() bool {
		return strings.Contains(e.logs.String(), "keys differ from the fleet's")
	})
	var warned []string
	for _, l := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(l, "keys differ from the fleet's") {
			warned = append(warned, l)
		}
		// Worker 1 holds #1 and #2 only.
		if strings.Contains(l, "worker=1") && strings.Contains(l, "Using API Key #3") {
			t.Errorf("worker 1 used a key it does not hold: %s", l)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "lacks 1 of the fleet's 3 keys ("+e.keys[2].Fingerprint+")") {
		t.Errorf("warnings %q, want one naming the missing key's fingerprint", warned)
	}
}
