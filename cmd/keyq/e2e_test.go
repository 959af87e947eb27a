package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
)

var e2eKeys = []string{
	"AIzaSyEXAMPLE-e2e-key-number-one-00001",
	"AIzaSyEXAMPLE-e2e-key-number-two-00002",
	"AIzaSyEXAMPLE-e2e-key-number-three-003",
}

// proc is one keyq command running in this test binary, as `keyq <name>`
// would run on its own host.
type proc struct {
	logs *testutil.Logs
	done chan int
}

func startCmd(t *testing.T, ctx context.Context, name string) *proc {
	t.Helper()
	p := &proc{logs: &testutil.Logs{}, done: make(chan int, 1)}
	go func() { p.done <- run(ctx, []string{name}, p.logs, p.logs) }()
	return p
}

var listening = regexp.MustCompile(`msg="Backend listening on [^"]*" addr=(\S+)`)

func (p *proc) addr(t *testing.T) string {
	t.Helper()
	var addr string
	testutil.Eventually(t, 10*time.Second, "the API to listen", func() bool {
		select {
		case code := <-p.done:
			t.Fatalf("keyq exited %d:\n%s", code, p.logs.String())
		default:
		}
		if m := listening.FindStringSubmatch(p.logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	return addr
}

func postJob(t *testing.T, base, name string) string {
	t.Helper()
	resp, err := http.Post(base+"/api/analyze-character", "application/json", strings.NewReader(fmt.Sprintf(`{"name":%q}`, name)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var acc struct {
		ID        string `json:"id"`
		Status    string `json:"status"`
		StatusURL string `json:"status_url"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&acc); err != nil || resp.StatusCode != http.StatusAccepted || acc.Status != "queued" {
		t.Fatalf("POST: %d %+v %v", resp.StatusCode, acc, err)
	}
	return acc.StatusURL
}

type jobView struct {
	Status string `json:"status"`
	Result struct {
		Key      string `json:"key"`
		Attempts int    `json:"attempts"`
		Analysis struct {
			Summary string   `json:"summary"`
			Traits  []string `json:"traits"`
		} `json:"analysis"`
	} `json:"result"`
}

func pollJob(t *testing.T, url string) jobView {
	t.Helper()
	var j jobView
	testutil.Eventually(t, 30*time.Second, "job "+url+" to succeed (last: "+j.Status+")", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
			t.Fatal(err)
		}
		if j.Status == "failed" {
			t.Fatalf("job failed: %+v", j)
		}
		return j.Status == "succeeded"
	})
	return j
}

// One `keyq api` and two `keyq worker`, one Redis, a fake Gemini whose key
// #3 always answers 503: every job succeeds, the keys go round in one
// rotation, the seed's lines show, and no key shows anywhere.
func TestAPIAndTwoWorkers(t *testing.T) {
	rdb, url := redistest.Open(t)
	up, base := faketest.Start(t, geminifake.Options{Latency: 10 * time.Millisecond})
	up.Always(e2eKeys[2], geminifake.FixtureReply("503_deadline_expired"))
	t.Setenv("REDIS_URL", url)
	t.Setenv("GEMINI_API_KEY", " "+strings.Join(e2eKeys, " , ")+" ")
	t.Setenv("GEMINI_BASE_URL", base)
	t.Setenv("GEMINI_RETRY_DELAY", "5ms")
	t.Setenv("API_ADDR", "127.0.0.1:0")
	t.Setenv("WORKER_METRICS_ADDR", "off") // two workers in one process

	ctx, cancel := context.WithCancel(context.Background())
	procs := []*proc{startCmd(t, ctx, "api"), startCmd(t, ctx, "worker"), startCmd(t, ctx, "worker")}
	t.Cleanup(func() {
		cancel()
		for _, p := range procs {
			if code := <-p.done; code != 0 {
				t.Errorf("exit %d:\n%s", code, p.logs.String())
			}
		}
	})
	apiBase := "http://" + procs[0].addr(t)

	const jobs = 24
	var urls []string
	for i := range jobs {
		urls = append(urls, apiBase+postJob(t, apiBase, fmt.Sprintf("Character %d", i)))
	}
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Go(func() {
			j := pollJob(t, u)
			if j.Result.Key == "#3" || j.Result.Analysis.Summary == "" || len(j.Result.Analysis.Traits) == 0 {
				t.Errorf("result %+v: want an analysis served by #1 or #2", j.Result)
			}
		})
	}
	wg.Wait()

	// One rotation across both workers: every pick takes the next slot, so
	// #3 (which always fails) is picked about a third of the time, and
	// every success is followed by no repeat of a key within its job run.
	count := map[string]int{}
	for _, c := range up.Calls() {
		for i, k := range e2eKeys {
			if c.Key == k {
				count[fmt.Sprintf("#%d", i+1)]++
			}
		}
	}
	total := count["#1"] + count["#2"] + count["#3"]
	if count["#1"]+count["#2"] != jobs || total < jobs || count["#3"] == 0 {
		t.Errorf("calls per key %v: want %d successes on #1/#2 and some 503s from #3", count, jobs)
	}
	t.Logf("upstream calls per key: %v", count)
	// Picks are one rotation: no key is picked twice as often as another.
	if count["#1"] > 2*count["#2"]+2 || count["#2"] > 2*count["#1"]+2 {
		t.Errorf("rotation uneven: %v", count)
	}

	var all strings.Builder
	for _, p := range procs {
		all.WriteString(p.logs.String())
	}
	logs := all.String()
	for _, line := range []string{
		"Loaded 3 Gemini API keys for load balancing",
		"Backend listening on 127.0.0.1:",
		"[Gemini] Using API Key #3 (attempt 1/6)",
		"[Gemini] API Key #3 failed (503): Deadline expired before operation could complete.",
		"[Gemini] Retrying with next key in 5ms...",
		"202 POST /api/analyze-character",
	} {
		if !strings.Contains(logs, line) {
			t.Errorf("logs lack %q", line)
		}
	}
	if hits := testutil.FindSecrets(logs+testutil.DumpRedis(t, rdb), e2eKeys...); len(hits) > 0 {
		t.Errorf("keys leaked: %v", hits)
	}
}

func TestDevSubstitutesAndAnnounces(t *testing.T) {
	t.Setenv("API_ADDR", "127.0.0.1:0")
	t.Setenv("SIM_LATENCY", "1ms")
	t.Setenv("SIM_FAILURE_RATE", "0")
	t.Setenv("REDIS_URL", "")
	t.Setenv("GEMINI_API_KEY", "")
	ctx, cancel := context.WithCancel(context.Background())
	p := startCmd(t, ctx, "dev")
	t.Cleanup(func() {
		cancel()
		if code := <-p.done; code != 0 {
			t.Errorf("dev exited %d:\n%s", code, p.logs.String())
		}
	})
	apiBase := "http://" + p.addr(t)
	j := pollJob(t, apiBase+postJob(t, apiBase, "Ada Lovelace"))
	if !strings.Contains(j.Result.Analysis.Summary, "Ada Lovelace") {
		t.Errorf("simulated analysis %+v does not name the character", j.Result.Analysis)
	}
	logs := p.logs.String()
	for _, s := range []string{"EMBEDDED IN-MEMORY Redis", "SIMULATED Gemini", "level=WARN"} {
		if !strings.Contains(logs, s) {
			t.Errorf("dev does not announce %q:\n%s", s, logs)
		}
	}
}

func TestConfigErrorsExit2AndNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		cmd, env, val, want string
	}{
		{"worker", "GEMINI_API_KEY", "", "GEMINI_API_KEY is required"},
		{"worker", "GEMINI_RETRIES", "-1", "GEMINI_RETRIES"},
		{"worker", "GEMINI_TIMEOUT", "soon", "GEMINI_TIMEOUT"},
		{"api", "REDIS_URL", "http://secret-password@x", "REDIS_URL"},
		{"api", "JOB_RETENTION", "0s", "JOB_RETENTION"},
		{"dev", "WORKER_CONCURRENCY", "0", "WORKER_CONCURRENCY"},
		{"api", "API_ADDR", "256.1.1.1:99999", "API_ADDR"},
		{"worker", "GEMINI_BASE_URL", "http://h/?key=secret-password", "GEMINI_BASE_URL"},
		{"worker", "GEMINI_BASE_URL", "http://user:secret-password@h/", "GEMINI_BASE_URL"},
		{"worker", "GEMINI_RETRY_DELAY", "1", "like 60s"},
		{"api", "API_TOKENS", "change-me-long-random-token-1", "API_TOKENS"},
		{"fake", "SIM_429_RATE", "0.9", "SIM_429_RATE"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv("GEMINI_API_KEY", "k1")
			t.Setenv(tc.env, tc.val)
			var out bytes.Buffer
			if code := run(context.Background(), []string{tc.cmd}, &out, &out); code != exitConfig {
				t.Errorf("exit %d, want %d; output:\n%s", code, exitConfig, out.String())
			}
			if !strings.Contains(out.String(), tc.want) || strings.Contains(out.String(), "secret-password") {
				t.Errorf("output does not name %s, or echoes a secret:\n%s", tc.want, out.String())
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	for cmd, vars := range map[string][]string{
		"worker": {"REDIS_URL", "GEMINI_API_KEY", "GEMINI_MODEL", "GEMINI_BASE_URL", "GEMINI_TIMEOUT", "GEMINI_RETRIES", "GEMINI_RETRY_DELAY", "WORKER_CONCURRENCY"},
		"api":    {"REDIS_URL", "API_ADDR", "JOB_MAX_RETRY", "JOB_TIMEOUT", "JOB_RETENTION"},
		"dev":    {"REDIS_URL", "GEMINI_API_KEY", "API_ADDR", "WORKER_CONCURRENCY", "JOB_MAX_RETRY"},
	} {
		var out bytes.Buffer
		if code := run(context.Background(), []string{cmd, "--help"}, &out, &out); code != 0 {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		for _, v := range vars {
			if !regexp.MustCompile(`(?m)^\s+` + v + `\s`).MatchString(out.String()) {
				t.Errorf("keyq %s --help lacks %s:\n%s", cmd, v, out.String())
			}
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &out, &out); code != exitConfig {
		t.Errorf("unknown command: exit %d", code)
	}
}
