package deploytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
)

// A real Prometheus (Debian's binary) scrapes a real `keyq api` and
// `keyq worker` (on a real redis-server and a fake Gemini), loads
// alerts.yml, and answers queries for keyq's series through its HTTP API:
// the scrape side of deploy/prometheus/, end to end, without Docker.
func TestPrometheusScrapesKeyq(t *testing.T) {
	if testing.Short() {
		t.Skip("builds keyq and runs prometheus")
	}
	promBin := tool(t, "prometheus")
	start := time.Now()
	dir := t.TempDir()
	bin := filepath.Join(dir, "keyq")
	build := exec.Command("go", "build", "-o", bin, "./cmd/keyq")
	build.Dir = root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, redisURL := redistest.Open(t)
	_, gemini := faketest.Start(t, geminifake.Options{Latency: 5 * time.Millisecond})

	apiAddr, workerAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := append(cleanEnv(), "REDIS_URL="+redisURL, "LOG_LEVEL=debug")
	startProc(t, "keyq api", bin, []string{"api"}, append(env, "API_ADDR="+apiAddr))
	startProc(t, "keyq worker", bin, []string{"worker"}, append(env,
		"GEMINI_API_KEY=EXAMPLE-KEY-1,EXAMPLE-KEY-2", "GEMINI_BASE_URL="+gemini,
		"GEMINI_RETRY_DELAY=10ms", "WORKER_METRICS_ADDR="+workerAddr))
	waitHTTP(t, "http://"+apiAddr+"/readyz", 15*time.Second)
	waitHTTP(t, "http://"+workerAddr+"/metrics", 15*time.Second)

	// One job through the fleet, so the job and queue series exist.
	body := `{"name":"Sherlock Holmes","description":"A consulting detective in London.","language":"en"}`
	resp, err := http.Post("http://"+apiAddr+"/api/analyze-character", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/analyze-character: %d %s", resp.StatusCode, b)
	}

	// The compose file's scrape jobs, with static targets instead of
	// compose DNS, every second; and the real alerting rules.
	copyFile(t, filepath.Join(root(t), "deploy", "prometheus", "alerts.yml"), filepath.Join(dir, "alerts.yml"))
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: keyq-api
    static_configs: [{targets: [%q]}]
  - job_name: keyq-worker
    static_configs: [{targets: [%q]}]
`, apiAddr, workerAddr)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, "prometheus", promBin, []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "tsdb"),
		"--web.listen-address=" + promAddr,
	}, cleanEnv())
	prom := "http://" + promAddr
	waitHTTP(t, prom+"/-/ready", 15*time.Second)

	deadline := time.Now().Add(20 * time.Second)
	for _, q := range []struct{ query, what string }{
		{`up{job="keyq-api"} == 1`, "the API scraped"},
		{`up{job="keyq-worker"} == 1`, "the worker scraped"},
		{`go_goroutines{job="keyq-worker"}`, "a worker runtime series"},
		{`keyq_http_requests_total{job="keyq-api",route="/api/analyze-character",method="POST",code="202"}`, "the API's request counter for the POST"},
		{`keyq_jobs_total{job="keyq-worker",status="succeeded"} == 1`, "the job counted as succeeded by the worker (KeyqJobFailureRateHigh's input)"},
		{`asynq_queue_latency_seconds{job="keyq-api",queue="keyq"}`, "asynq's queue latency from the API (KeyqQueueLatencyHigh's input)"},
		{`keyq_keys{job="keyq-api",state="ready"} > 0`, "the pool's ready keys (KeyqAllKeysCooling's input)"},
		{`keyq_keys{job="keyq-api",state="disabled"} == 0`, "the pool's disabled keys at 0, not absent (KeyqKeyDisabled's input)"},
		{`keyq_key_events_total{job="keyq-worker",event="leaked"} == 0`, "the leaked-key counter at 0 from the start (KeyqKeyLeaked's input)"},
	} {
		waitQuery(t, prom, q.query, q.what, deadline)
	}
	// The rules loaded into a real Prometheus, not only promtool.
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name string `json:"name"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, prom+"/api/v1/rules", &rules)
	var loaded []string
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			loaded = append(loaded, r.Name)
		}
	}
	if !strings.Contains(strings.Join(loaded, " "), "KeyqKeyLeaked") || len(loaded) < 8 {
		t.Errorf("prometheus loaded rules %v, want alerts.yml's", loaded)
	}
	// Budgets are off here (GEMINI_RPM/RPD 0): no quota ratio to show.
	if n := len(query(t, prom, `keyq_project_quota_used_ratio`)); n != 0 {
		t.Errorf("keyq_project_quota_used_ratio has %d series without budgets", n)
	}
	t.Logf("prometheus answered every query %s after the test started", time.Since(start).Round(100*time.Millisecond))
}

// cleanEnv is the test's environment without any keyq setting, so that a
// developer's exported GEMINI_API_KEY or REDIS_URL cannot leak in.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "GEMINI_"), strings.HasPrefix(name, "API_"), strings.HasPrefix(name, "WORKER_"),
			strings.HasPrefix(name, "JOB_"), strings.HasPrefix(name, "DASHBOARD_"), strings.HasPrefix(name, "LOG_"),
			name == "REDIS_URL":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freeAddr picks a loopback port below Linux's ephemeral range (32768 and
// up), so that no outgoing connection takes it before the server binds it
// (as internal/redistest does).
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+rand.IntN(12000)))
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startProc starts a process that the test stops (SIGTERM, then SIGKILL
// after 10 s) at cleanup; its output is shown if the test failed.
func startProc(t *testing.T, name, bin string, args, env []string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Killed with the test binary should it die before the cleanup runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop within 10 s of SIGTERM; killed", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	// A process that exits at once (bad flag, port taken) fails fast.
	select {
	case err := <-done:
		done <- err
		t.Fatalf("%s exited at start: %v\n%s", name, err, out.String())
	case <-time.After(50 * time.Millisecond):
	}
}

func waitHTTP(t *testing.T, u string, within time.Duration) {
	t.Helper()
	end := time.Now().Add(within)
	var last error
	for time.Now().Before(end) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within %s: %v", u, within, last)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, b)
	}
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
}

// query asks Prometheus' HTTP API for an instant vector.
func query(t *testing.T, prom, q string) []sample {
	t.Helper()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []sample `json:"result"`
		} `json:"data"`
	}
	getJSON(t, prom+"/api/v1/query?query="+url.QueryEscape(q), &r)
	if r.Status != "success" {
		t.Fatalf("query %s: status %q", q, r.Status)
	}
	return r.Data.Result
}

// waitQuery polls q until it returns a series, failing at deadline with
// what was being waited for and the targets' state.
func waitQuery(t *testing.T, prom, q, what string, deadline time.Time) {
	t.Helper()
	for {
		if res := query(t, prom, q); len(res) > 0 {
			return
		}
		if time.Now().After(deadline) {
			var targets any
			getJSON(t, prom+"/api/v1/targets", &targets)
			tj, _ := json.MarshalIndent(targets, "", "  ")
			t.Fatalf("waiting for %s: prometheus query %s returned nothing by the deadline; targets:\n%s", what, q, tj)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
