package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/metrics"
	"github.com/keyq/keyq/tasks"
)

func scrape(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	w := httptest.NewRecorder()
	metrics.Handler(g).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", w.Code, w.Body)
	}
	return w.Body.String()
}

// metricValue reads one sample's value from a scrape, "" if absent.
func metricValue(body, series string) string {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// A tiny asynq server with JobMiddleware runs one job that succeeds, one
// that fails for good at once (SkipRetry), and one that fails its only
// run: two failed, one succeeded, three latencies from the enqueue header.
func TestJobMiddleware(t *testing.T) {
	rdb, _ := redistest.Open(t)
	reg, err := metrics.NewRegistry(metrics.WorkerCollectors()...)
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t, reg)

	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 2, Queues: map[string]int{"metrics-test": 1}, LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Millisecond },
	})
	mux := asynq.NewServeMux()
	mux.Use(metrics.JobMiddleware)
	mux.HandleFunc("t", func(_ context.Context, t *asynq.Task) error {
		switch string(t.Payload()) {
		case "ok":
			return nil
		case "final":
			return errors.Join(errors.New("blocked"), asynq.SkipRetry)
		case "cancel":
			return &tasks.JobError{Class: tasks.ClassCancelled, Message: "cancelled", Final: true}
		}
		return errors.New("unavailable")
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	cl := asynq.NewClientFromRedisClient(rdb)
	enq := time.Now().Add(-2 * time.Second) // as if queued two seconds ago
	for _, p := range []string{"ok", "final", "again", "cancel"} {
		task := asynq.NewTaskWithHeaders("t", []byte(p), metrics.EnqueueHeaders(enq))
		if _, err := cl.Enqueue(task, asynq.Queue("metrics-test"), asynq.MaxRetry(0)); err != nil {
			t.Fatal(err)
		}
	}
	count := func(body, status string) float64 {
		v := metricValue(body, `keyq_job_duration_seconds_count{status="`+status+`"}`)
		var f float64
		if v != "" {
			_, _ = fmt.Sscan(v, &f)
		}
		return f
	}
	var after string
	testutil.Eventually(t, 10*time.Second, "four jobs to finish (a cancelled job is not a failed one)", func() bool {
		after = scrape(t, reg)
		return count(after, "failed")-count(before, "failed") == 2 && count(after, "succeeded")-count(before, "succeeded") == 1 &&
			count(after, "cancelled")-count(before, "cancelled") == 1
	})
	for _, want := range []string{
		`keyq_jobs_total{status="failed"}`, `keyq_jobs_total{status="succeeded"}`,
		`keyq_job_runs_total{outcome="failed"}`,
		// Enqueued two seconds ago: nothing lands in the buckets under 2s.
		`keyq_job_duration_seconds_bucket{status="succeeded",le="1"} 0`,
	} {
		if !strings.Contains(after, want) {
			t.Errorf("scrape lacks %s:\n%s", want, after)
		}
	}
}

func TestObserveUpstreamAndPick(t *testing.T) {
	reg, err := metrics.NewRegistry(metrics.WorkerCollectors()...)
	if err != nil {
		t.Fatal(err)
	}
	metrics.ObserveUpstream("ok", 30*time.Second)
	metrics.ObserveUpstream("rate_limited", 200*time.Millisecond)
	metrics.ObservePick(2 * time.Millisecond)
	body := scrape(t, reg)
	for _, want := range []string{
		`keyq_upstream_request_duration_seconds_bucket{class="ok",le="30"}`,
		`keyq_upstream_request_duration_seconds_count{class="rate_limited"}`,
		`keyq_key_pick_duration_seconds_count`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	// A second registry in the same process (API and worker in keyq dev,
	// or tests) may serve the same collectors.
	if _, err := metrics.NewRegistry(metrics.WorkerCollectors()...); err != nil {
		t.Errorf("second registry: %v", err)
	}
}

type source struct {
	st  []keyring.Status
	err error
}

func (s source) Statuses(context.Context) ([]keyring.Status, error) { return s.st, s.err }

func TestKeyCollector(t *testing.T) {
	const secret = "AIzaSyEXAMPLE-never-in-metrics-000001"
	c := metrics.NewKeyCollector(source{st: []keyring.Status{
		{Index: 1, Fingerprint: "25fe7c72dca8", Project: "p", State: keyring.StateDisabled, Reason: "bad key " + secret,
			Picks: 4, Successes: 1, Failures: map[string]int64{"bad_key": 3}},
	}}, 0)
	reg, err := metrics.NewRegistry(c)
	if err != nil {
		t.Fatal(err)
	}
	body := scrape(t, reg)
	for _, want := range []string{
		"# TYPE keyq_key_picks_total counter",
		`keyq_key_picks_total{fingerprint="25fe7c72dca8",index="1",project="p"} 4`,
		`keyq_key_successes_total{fingerprint="25fe7c72dca8",index="1",project="p"} 1`,
		`keyq_key_failures_total{class="bad_key",fingerprint="25fe7c72dca8",index="1",project="p"} 3`,
		"# TYPE keyq_key_state gauge",
		`keyq_key_state{fingerprint="25fe7c72dca8",index="1",project="p",state="cooling"} 0`,
		`keyq_key_state{fingerprint="25fe7c72dca8",index="1",project="p",state="disabled"} 1`,
		`keyq_key_state{fingerprint="25fe7c72dca8",index="1",project="p",state="ready"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s:\n%s", want, body)
		}
	}
	if hits := testutil.FindSecrets(body, secret); len(hits) > 0 {
		t.Errorf("a key leaked into metrics: %v", hits)
	}

	// Redis down: the scrape still answers, with the other metrics.
	down, err := metrics.NewRegistry(metrics.NewKeyCollector(source{err: errors.New("dial tcp: refused")}, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if body := scrape(t, down); !strings.Contains(body, "go_goroutines") || strings.Contains(body, "keyq_key_state{") {
		t.Errorf("scrape with the key source down:\n%s", body)
	}
}

func TestHTTPMiddleware(t *testing.T) {
	h := metrics.NewHTTP()
	reg, err := metrics.NewRegistry(h)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/jobs/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	srv := h.Middleware(mux)
	for _, p := range []string{"/api/jobs/a", "/api/jobs/b", "/elsewhere"} {
		srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
	}
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/api/jobs/c", nil))
	body := scrape(t, reg)
	for _, want := range []string{
		`keyq_http_requests_total{code="404",method="GET",route="/api/jobs/{id}"} 2`,
		`keyq_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`keyq_http_requests_total{code="404",method="other",route="/api/jobs/{id}"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s:\n%s", want, body)
		}
	}
}
