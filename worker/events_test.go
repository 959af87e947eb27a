package worker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/testutil"
)

// A leaked key is alerted once to ALERT_WEBHOOK_URL, named by index and
// fingerprint, however many workers see it and however often.
func TestLeakedKeyIsAlertedOnce(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	e := start(t, setup{workers: 2, retryDelay: time.Millisecond, alertURL: hook.URL})
	e.up.Always(secrets[0], geminifake.FixtureReply("403_leaked"))
	for range 4 {
		e.await(e.enqueue("Leaky"), asynq.TaskStateCompleted)
	}
	testutil.Eventually(t, 5*time.Second, "an alert", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})
	// Both workers have had their chance to send a second one meanwhile:
	// the jobs after the first leak saw #1 disabled and never called it.
	e.await(e.enqueue("After"), asynq.TaskStateCompleted)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], "LEAKED") || !strings.Contains(got[0], e.keys[0].Fingerprint) || !strings.Contains(got[0], `"event":"leaked"`) {
		t.Errorf("alerts %q, want one naming #1's fingerprint as leaked", got)
	}
	if hits := testutil.FindSecrets(strings.Join(got, "\n"), secrets...); len(hits) > 0 {
		t.Errorf("an alert holds a key: %v", hits)
	}
}
