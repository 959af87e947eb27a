package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/webhook"
	kqworker "github.com/keyq/keyq/worker"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// startWorker runs a real worker on rdb's database against a fake Gemini
// whose calls take latency; it signs webhooks with testSecret.
func startWorker(t *testing.T, rdb *redis.Client, latency time.Duration) *geminifake.Upstream {
	t.Helper()
	up, base := faketest.Start(t, geminifake.Options{Latency: latency})
	wrdb := redis.NewClient(rdb.Options())
	keys, _, err := keyring.ParseKeys("AIzaSyEXAMPLE-clients-test-key-00001")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.New(wrdb, keys, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gem, err := gemini.New(gemini.Options{BaseURL: base, Model: "gemini-2.5-flash", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := kqworker.NewHandler(gem, ring, kqworker.HandlerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	secrets, _ := webhook.ParseSecrets(testSecret)
	w, err := kqworker.New(wrdb, h, kqworker.Options{Concurrency: 4, JobRetryDelay: 20 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, TaskCheckInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		WebhookSecrets: secrets, WebhookAllowPrivate: true, WebhookRetryDelay: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Shutdown(); wrdb.Close() })
	return up
}

// receiver is a webhook receiver that verifies and counts deliveries.
type receiver struct {
	mu       sync.Mutex
	fail     int                 // answer 500 to this many deliveries first
	bodies   map[string][]string // webhook-id -> bodies received
	bad      int                 // deliveries whose signature did not verify
	received chan struct{}
}

func newReceiver(fail int) *receiver {
	return &receiver{fail: fail, bodies: map[string][]string{}, received: make(chan struct{}, 100)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	secrets, _ := webhook.ParseSecrets(testSecret)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if webhook.Verify(secrets, r.Header, b, 0) != nil {
		rc.bad++
	}
	id := r.Header.Get(webhook.HeaderID)
	rc.bodies[id] = append(rc.bodies[id], string(b))
	rc.received <- struct{}{}
	if rc.fail > 0 {
		rc.fail--
		w.WriteHeader(http.StatusInternalServerError)
	}
}

func (rc *receiver) snapshot() (map[string][]string, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string][]string{}
	for k, v := range rc.bodies {
		out[k] = append([]string(nil), v...)
	}
	return out, rc.bad
}

func decodeJob(t *testing.T, b []byte) tasks.Job {
	t.Helper()
	var j tasks.Job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("not a job: %q: %v", b, err)
	}
	return j
}

func (e *env) submit(t *testing.T, body string, header map[string]string) string {
	t.Helper()
	r := e.post(t, body, header)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	var acc tasks.Accepted
	_ = json.Unmarshal(r.body, &acc)
	return acc.ID
}

// awaitStatus polls the job until it has status s.
func (e *env) awaitStatus(t *testing.T, id string, s tasks.Status, header map[string]string) tasks.Job {
	t.Helper()
	var j tasks.Job
	testutil.Eventually(t, 20*time.Second, "job "+id+" to be "+string(s), func() bool {
		r := e.do(t, request{method: http.MethodGet, path: "/api/jobs/" + id, header: header})
		j = decodeJob(t, r.body)
		return j.Status == s
	})
	return j
}

// sseEvent is one event of a stream.
type sseEvent struct{ id, event, data string }

// readEvents reads a job's event stream to its end.
func readEvents(t *testing.T, url string, header map[string]string) []sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		k, v, _ := strings.Cut(line, ": ")
		switch {
		case line == "":
			if cur.data != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case k == "id":
			cur.id = v
		case k == "event":
			cur.event = v
		case k == "data":
			cur.data = v
		}
	}
	return out
}

const clientJob = `{"name":"Ada Lovelace"}`
