package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/client"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/tasks"
)

var fakeListening = regexp.MustCompile(`SIMULATED Gemini on [^"]*" addr=(\S+)`)

// A demo fleet without a key: `keyq fake` on its own address, `keyq api`
// and `keyq worker` pointed at it, and a job submitted and awaited with
// the Go client, as a new user would.
func TestFakeDrivesAFleet(t *testing.T) {
	_, url := redistest.Open(t)
	t.Setenv("FAKE_ADDR", "127.0.0.1:0")
	t.Setenv("SIM_LATENCY", "5ms")
	t.Setenv("SIM_FAILURE_RATE", "0.3")
	t.Setenv("SIM_429_RATE", "0")
	ctx, cancel := context.WithCancel(context.Background())
	fake := startCmd(t, ctx, "fake")
	var addr string
	testutil.Eventually(t, 10*time.Second, "keyq fake to listen", func() bool {
		if m := fakeListening.FindStringSubmatch(fake.logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	t.Setenv("REDIS_URL", url)
	t.Setenv("GEMINI_API_KEY", "demo-key-1,demo-key-2,demo-key-3")
	t.Setenv("GEMINI_BASE_URL", "http://"+addr)
	t.Setenv("GEMINI_RETRY_DELAY", "1ms")
	t.Setenv("API_ADDR", "127.0.0.1:0")
	t.Setenv("WORKER_METRICS_ADDR", "off")
	procs := []*proc{fake, startCmd(t, ctx, "api"), startCmd(t, ctx, "worker")}
	t.Cleanup(func() {
		cancel()
		for _, p := range procs {
			if code := <-p.done; code != 0 {
				t.Errorf("exit %d:\n%s", code, p.logs.String())
			}
		}
	})
	c, err := client.New("http://"+procs[1].addr(t), client.Options{Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for _, name := range []string{"Ada Lovelace", "Grace Hopper", "Alan Turing", "Hedy Lamarr"} {
		acc, err := c.SubmitAnalyzeCharacter(wctx, tasks.AnalyzeCharacter{Name: name}, client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		j, err := c.Wait(wctx, acc.ID, nil)
		if err != nil || j.Status != tasks.StatusSucceeded || j.Result == nil || !strings.Contains(string(*j.Result), name) {
			t.Fatalf("job %s: %+v, %v; want succeeded with an analysis of %s", acc.ID, j, err, name)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out strings.Builder
		if code := run(context.Background(), []string{arg}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "keyq ") {
			t.Errorf("keyq %s: exit %d, %q", arg, code, out.String())
		}
	}
}
