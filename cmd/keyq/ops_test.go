package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/metrics"
)

// keyq api with and without API_TOKENS and DASHBOARD_PASSWORD, as an
// operator would start it.
func TestAPIOps(t *testing.T) {
	_, url := redistest.Open(t)
	for _, c := range []struct {
		name string
		env  map[string]string
	}{
		{"open", map[string]string{}},
		{"protected", map[string]string{"API_TOKENS": "tiny9," + submitToken, "DASHBOARD_PASSWORD": "dashboard-password-1", "API_CORS_ORIGINS": "https://app.example.com"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range map[string]string{"REDIS_URL": url, "API_ADDR": "127.0.0.1:0", "API_TOKENS": "", "DASHBOARD_PASSWORD": "", "API_CORS_ORIGINS": ""} {
				t.Setenv(k, v)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			logs := &testutil.Logs{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			go func() { done <- run(ctx, []string{"api"}, logs, logs) }()
			t.Cleanup(func() {
				cancel()
				if code := <-done; code != 0 {
					t.Errorf("api exited %d:\n%s", code, logs)
				}
			})
			var addr string
			testutil.Eventually(t, 10*time.Second, "keyq api to listen", func() bool {
				if m := listenLine.FindStringSubmatch(logs.String()); m != nil {
					addr = m[1]
				}
				return addr != ""
			})
			get := func(path string, auth func(*http.Request)) int {
				req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
				if auth != nil {
					auth(req)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			dash := func(r *http.Request) { r.SetBasicAuth("admin", "dashboard-password-1") }
			bearer := func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+submitToken) }
			l := logs.String()
			if c.name == "open" {
				if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "API_TOKENS is unset: the API is OPEN") {
					t.Errorf("no loud warning of an open API:\n%s", l)
				}
				for path, want := range map[string]int{"/api/jobs/0123456789abcdef0123456789abcdef": 404, "/metrics": 200, "/monitoring/": 404, "/keys": 404} {
					if got := get(path, dash); got != want {
						t.Errorf("GET %s: %d, want %d", path, got, want)
					}
				}
				return
			}
			if strings.Contains(l, "API is OPEN") || !strings.Contains(l, "token 1 of 2 is shorter than 16 characters") {
				t.Errorf("start-up lines:\n%s", l)
			}
			for _, s := range []string{submitToken, "dashboard-password-1", "tiny9"} {
				if strings.Contains(l, s) {
					t.Errorf("a secret (%s) is in the log:\n%s", s, l)
				}
			}
			for _, r := range []struct {
				path string
				auth func(*http.Request)
				want int
			}{
				{"/api/jobs/0123456789abcdef0123456789abcdef", nil, 401},
				{"/api/jobs/0123456789abcdef0123456789abcdef", bearer, 404},
				{"/healthz", nil, 200}, {"/readyz", nil, 200}, {"/metrics", nil, 200},
				{"/monitoring/", nil, 401}, {"/monitoring/", bearer, 401}, {"/monitoring/", dash, 200},
				{"/monitoring/api/queues", dash, 200}, {"/keys", dash, 200},
			} {
				if got := get(r.path, r.auth); got != r.want {
					t.Errorf("GET %s: %d, want %d", r.path, got, r.want)
				}
			}
		})
	}
}

func TestAPIOpsBadConfig(t *testing.T) {
	_, url := redistest.Open(t)
	t.Setenv("REDIS_URL", url)
	t.Setenv("API_ADDR", "127.0.0.1:0")
	for env, val := range map[string]string{"API_CORS_ORIGINS": "app.example.com", "DASHBOARD_USER": ""} {
		t.Run(env, func(t *testing.T) {
			t.Setenv("DASHBOARD_PASSWORD", "dashboard-password-1")
			t.Setenv(env, val)
			var out bytes.Buffer
			if code := run(context.Background(), []string{"api"}, &out, &out); code != exitConfig || !strings.Contains(out.String(), env) ||
				strings.Contains(out.String(), "dashboard-password-1") {
				t.Errorf("exit %d:\n%s", code, out.String())
			}
		})
	}
}

func TestHelpListsOpsVariables(t *testing.T) {
	for cmd, vars := range map[string][]string{
		"api":    {"API_TOKENS", "API_CORS_ORIGINS", "DASHBOARD_PASSWORD", "DASHBOARD_USER", "DASHBOARD_READONLY"},
		"dev":    {"API_TOKENS", "API_CORS_ORIGINS", "DASHBOARD_PASSWORD"},
		"worker": {"WORKER_METRICS_ADDR"},
	} {
		var out bytes.Buffer
		run(context.Background(), []string{cmd, "--help"}, &out, &out)
		for _, v := range vars {
			if !regexp.MustCompile(`(?m)^\s+` + v + `\s`).MatchString(out.String()) {
				t.Errorf("keyq %s --help lacks %s:\n%s", cmd, v, out.String())
			}
		}
	}
}

func TestServeWorkerMetrics(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, off := range []string{"", "off", "OFF"} {
		stop, err := serveWorkerMetrics(ctx, MetricsEnv{WorkerMetricsAddr: off}, log)
		if err != nil {
			t.Errorf("%q: %v", off, err)
		}
		stop()
	}

	logs := &testutil.Logs{}
	stop, err := serveWorkerMetrics(ctx, MetricsEnv{WorkerMetricsAddr: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m := regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no address logged:\n%s", logs)
	}
	metrics.ObserveUpstream("ok", time.Second)
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `keyq_upstream_request_duration_seconds_count{class="ok"}`) {
		t.Errorf("worker /metrics: %d\n%s", resp.StatusCode, b)
	}

	// A taken port is a configuration error at start.
	_, err = serveWorkerMetrics(ctx, MetricsEnv{WorkerMetricsAddr: m[1]}, log)
	var ce configError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "WORKER_METRICS_ADDR") {
		t.Errorf("taken port: %v", err)
	}

	stop()
	testutil.Eventually(t, 5*time.Second, "the metrics server to stop", func() bool {
		c, err := net.Dial("tcp", m[1])
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}
