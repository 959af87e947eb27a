package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/keyring"
)

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	until := time.Now().Add(time.Minute)
	keys := &stubKeys{statuses: []keyring.Status{
		{Index: 1, Fingerprint: "25fe7c72dca8", Project: "proj-a", State: keyring.StateReady, Picks: 3, Successes: 2, Failures: map[string]int64{"unavailable": 1}},
		{Index: 2, Fingerprint: "f19f592d4bef", Project: "proj-a", State: keyring.StateCooling, Until: &until, Failures: map[string]int64{}},
	}}
	s, _, _ := opsServer(t, Options{Keys: keys, Pool: "m", PerKeyMetrics: true})
	if w := opsDo(t, s, http.MethodPost, "/api/analyze-character", jsonCT, jobBody); w.Code != http.StatusAccepted {
		t.Fatalf("POST job: %d %s", w.Code, w.Body)
	}
	opsDo(t, s, http.MethodGet, "/api/jobs/0123456789abcdef0123456789abcdef", nil, "")
	opsDo(t, s, http.MethodGet, "/api/jobs/fedcba98765432100123456789abcdef", nil, "")
	opsDo(t, s, http.MethodGet, "/no/such/route", nil, "")
	w := opsDo(t, s, http.MethodGet, "/metrics", nil, "")
	body := w.Body.String()
	if w.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", w.Code, body)
	}
	for _, want := range []string{
		`keyq_http_requests_total{code="202",method="POST",route="/api/analyze-character"} 1`,
		// One series per route, not per job id.
		`keyq_http_requests_total{code="404",method="GET",route="/api/jobs/{id}"} 2`,
		`keyq_http_requests_total{code="404",method="GET",route="/"} 1`,
		`keyq_http_request_duration_seconds_bucket{method="POST",route="/api/analyze-character",le="+Inf"} 1`,
		`asynq_tasks_enqueued_total{queue="keyq",state="pending"} 1`,
		`asynq_queue_size{queue="keyq"} 1`,
		`keyq_key_picks_total{fingerprint="25fe7c72dca8",index="1",project="proj-a"} 3`,
		`keyq_key_failures_total{class="unavailable",fingerprint="25fe7c72dca8",index="1",project="proj-a"} 1`,
		`keyq_key_state{fingerprint="f19f592d4bef",index="2",project="proj-a",state="cooling"} 1`,
		`keyq_key_state{fingerprint="f19f592d4bef",index="2",project="proj-a",state="ready"} 0`,
		`keyq_key_state_until_timestamp_seconds{fingerprint="f19f592d4bef",index="2",project="proj-a"}`,
		`keyq_keys{pool="m",state="cooling"} 1`,
		`keyq_keys{pool="m",state="disabled"} 0`,
		`keyq_project_keys{pool="m",project="proj-a",state="ready"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// By default, the pool by state and project only: series that do not
	// grow with the number of keys.
	d, _, _ := opsServer(t, Options{Keys: keys, Pool: "m"})
	body = opsDo(t, d, http.MethodGet, "/metrics", nil, "").Body.String()
	if !strings.Contains(body, `keyq_keys{pool="m",state="ready"} 1`) || strings.Contains(body, "keyq_key_picks_total") {
		t.Errorf("default /metrics: want keyq_keys and no per-key series:\n%s", body)
	}
}
