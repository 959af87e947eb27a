package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/internal/testutil"
)

const submitToken = "submit-test-token-0123456789abcdef"

var listenLine = regexp.MustCompile(`msg="Backend listening on [^"]*" addr=(\S+)`)

// startDevFor runs `keyq dev` (embedded Redis, simulated Gemini) with env
// until the test ends, and returns its base URL and logs.
func startDevFor(t *testing.T, env map[string]string) (string, *testutil.Logs) {
	t.Helper()
	base := map[string]string{
		"API_ADDR": "127.0.0.1:0", "REDIS_URL": "", "GEMINI_API_KEY": "", "GEMINI_API_KEY_FILE": "",
		"SIM_LATENCY": "20ms", "SIM_FAILURE_RATE": "0", "GEMINI_RETRY_DELAY": "1ms", "JOB_RETRY_DELAY": "100ms",
		"API_TOKENS": "", "DASHBOARD_PASSWORD": "",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
	logs := &testutil.Logs{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"dev"}, logs, logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("dev exited %d:\n%s", code, logs)
		}
	})
	var addr string
	testutil.Eventually(t, 10*time.Second, "keyq dev to listen", func() bool {
		select {
		case code := <-done:
			t.Fatalf("keyq dev exited %d:\n%s", code, logs)
		default:
		}
		if m := listenLine.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	return "http://" + addr, logs
}

func submit(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"submit"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSubmit(t *testing.T) {
	base, logs := startDevFor(t, map[string]string{"API_TOKENS": submitToken})
	t.Setenv("KEYQ_TOKEN", "")

	code, out, errs := submit(t, "--url", base, "--token", submitToken, "--name", "Ada Lovelace", "--description", "Wrote the first program.", "--poll", "20ms")
	if code != 0 {
		t.Fatalf("submit: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	var res struct {
		Analysis struct {
			Summary string `json:"summary"`
		} `json:"analysis"`
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !strings.Contains(res.Analysis.Summary, "Ada Lovelace") || res.Key == "" {
		t.Errorf("stdout is not the result: %v\n%s", err, out)
	}
	for _, want := range []string{": submitted to ", ": queued", ": succeeded"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}

	// The token from $KEYQ_TOKEN, the job from a file with an image.
	dir := t.TempDir()
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...)
	if err := os.WriteFile(filepath.Join(dir, "ada.png"), png, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "job.json"), []byte(`{"name":"Grace Hopper","language":"en"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEYQ_TOKEN", submitToken)
	if code, out, errs := submit(t, "--url", base+"/", "--file", filepath.Join(dir, "job.json"), "--image", filepath.Join(dir, "ada.png"), "--poll", "20ms"); code != 0 || !strings.Contains(out, "Grace Hopper") {
		t.Errorf("submit --file --image: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	// A load run.
	code, out, errs = submit(t, "--url", base, "--name", "Load", "--count", "6", "--concurrency", "3", "--poll", "20ms")
	if code != 0 || !regexp.MustCompile(`(?m)^succeeded\s+6$`).MatchString(out) || !regexp.MustCompile(`(?m)^failed\s+0$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^latency\s+p50 \S+\s+p95 \S+`).MatchString(out) {
		t.Errorf("load run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	// Refusals: no token, a wrong one, an invalid job. Exit 1, and say why.
	t.Setenv("KEYQ_TOKEN", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "X"}, "401 unauthorized"},
		{[]string{"--name", "X", "--token", submitToken + "x"}, "401 unauthorized"},
		{[]string{"--name", "X", "--token", submitToken, "--language", "not a language!"}, "400 invalid_request"},
	} {
		code, _, errs := submit(t, append([]string{"--url", base}, c.args...)...)
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("submit %v: exit %d, stderr:\n%s", c.args, code, errs)
		}
	}
	// Bad usage: exit 2.
	for _, args := range [][]string{{}, {"--name", "X", "extra"}, {"--name", "X", "--count", "0"}, {"--name", "X", "--url", "localhost"}, {"--image", "/nonexistent", "--name", "X"}} {
		if code, _, errs := submit(t, args...); code != exitConfig {
			t.Errorf("submit %v: exit %d, want %d; stderr:\n%s", args, code, exitConfig, errs)
		}
	}
	if hits := testutil.FindSecrets(logs.String(), submitToken); len(hits) > 0 {
		t.Errorf("the token is in keyq's logs: %v", hits)
	}
}

// A job whose every call fails ends failed: submit shows it and exits 1.
func TestSubmitFailedJob(t *testing.T) {
	base, _ := startDevFor(t, map[string]string{"SIM_FAILURE_RATE": "1", "JOB_MAX_RETRY": "1", "GEMINI_RETRIES": "0"})
	code, out, errs := submit(t, "--url", base, "--name", "Doomed", "--poll", "20ms")
	if code != 1 {
		t.Errorf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{": queued", ": retrying", ": failed"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	code, out, _ = submit(t, "--url", base, "--name", "Doomed too", "--count", "2", "--poll", "20ms")
	if code != 1 || !regexp.MustCompile(`(?m)^failed\s+2$`).MatchString(out) {
		t.Errorf("load run of failing jobs: exit %d\n%s", code, out)
	}
}
