package chaostest

import (
	"bytes"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
)

// SIGTERM to a worker with long Gemini calls in flight: it takes no new
// job, lets the calls finish, stores their results and exits 0; nothing is
// run twice, and the jobs it did not take wait for the next worker.
//
// The calls take 12 s here rather than Gemini's ~30 s, to keep CI short;
// what matters is that they outlast asynq's default 8 s shutdown timeout,
// which keyq raises to GEMINI_TIMEOUT + GEMINI_RETRY_DELAY + 5 s.
func TestSIGTERMWithCallsInFlight(t *testing.T) {
	bin := keyqBinary(t)
	t.Parallel()
	const callLatency = 12 * time.Second
	_, url := redistest.Open(t)
	up, base := faketest.Start(t, geminifake.Options{Respond: func(_ string, req []byte) geminifake.Reply {
		r := geminifake.FixtureReply("200_ok_json")
		if bytes.Contains(req, []byte("In Flight")) {
			r.Delay = callLatency
		}
		return r
	}})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := "http://" + addr
	env := keyqEnv(url, base, addr, "GEMINI_TIMEOUT=60s", "WORKER_CONCURRENCY=4")
	startProc(t, "keyq api", env, bin, "api")
	w := startProc(t, "keyq worker (SIGTERM)", env, bin, "worker")
	waitReady(t, api, 15*time.Second)

	var inFlight, late []string
	for i := range 3 {
		inFlight = append(inFlight, mustPost(t, api, fmt.Sprintf("In Flight %d", i)))
	}
	testutil.Eventually(t, 15*time.Second, "3 Gemini calls under way", func() bool {
		return len(generateCalls(up.Calls())) == 3
	})
	time.Sleep(time.Second)
	termAt := time.Now()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the worker to say it is shutting down", func() bool {
		return len(logLines(w.logs.String(), "worker shutting down")) > 0
	})
	for i := range 2 {
		late = append(late, mustPost(t, api, fmt.Sprintf("Late %d", i)))
	}
	testutil.Eventually(t, 2*callLatency+10*time.Second, "the worker to exit", w.exited)
	exitAfter := time.Since(termAt)
	if w.err != nil {
		t.Errorf("worker exit after SIGTERM: %v, want status 0", w.err)
	}
	calls := generateCalls(up.Calls())
	if len(calls) != 3 {
		t.Errorf("upstream calls %s; want the 3 in flight, and no job taken after SIGTERM", describeCalls(calls))
	}
	for _, c := range calls {
		if c.Status != http.StatusOK {
			t.Errorf("a call in flight was cut: %s", describeCalls(calls))
		}
	}
	for _, id := range inFlight {
		if j, _ := getJob(api, id); j.Status != "succeeded" || j.Attempts != 1 {
			t.Errorf("job in flight at SIGTERM: %s after %d runs, want succeeded after 1", j.Status, j.Attempts)
		}
	}
	for _, id := range late {
		if j, _ := getJob(api, id); j.Status != "queued" {
			t.Errorf("job posted after SIGTERM: %s, want queued", j.Status)
		}
	}

	// The next worker runs the jobs left queued; the others are not re-run.
	startProc(t, "keyq worker (next)", env, bin, "worker")
	final := settle(t, api, append(inFlight, late...), 30*time.Second)
	if c := count(final); c["succeeded"] != len(inFlight)+len(late) {
		t.Errorf("after a new worker: %v, want all %d succeeded", c, len(inFlight)+len(late))
	}
	perJob := map[string]int{}
	for _, c := range generateCalls(up.Calls()) {
		perJob[string(c.Body)]++
	}
	for body, n := range perJob {
		if n != 1 {
			t.Errorf("%d calls for one job (%.60s...), want 1", n, body)
		}
	}
	t.Logf("SIGTERM with 3 calls of %s in flight (%s left): worker exited %v after %s; calls %d for %d jobs; "+
		"2 jobs posted after SIGTERM stayed queued and the next worker ran them",
		callLatency, (callLatency - termAt.Sub(calls[0].At)).Round(100*time.Millisecond), w.err,
		exitAfter.Round(100*time.Millisecond), len(generateCalls(up.Calls())), len(perJob))
}

func mustPost(t *testing.T, api, name string) string {
	t.Helper()
	r := post(api, name)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST %s: %d %s %v", name, r.status, r.code, r.err)
	}
	return r.id
}
