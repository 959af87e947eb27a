package chaostest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
)

// A worker killed with SIGKILL in the middle of a 3 s Gemini call: asynq's
// lease recovery hands the job to another worker, which runs it again at
// once (JOB_RETRY_DELAY is 10 minutes here: a lease that lapsed under a dead
// worker is not the job's failure, so it neither waits for the job retry
// delay nor spends a retry); the result is stored once, and the shared
// rotation's counts and budgets count exactly the calls made.
//
// Timing: the job's lease (30 s) lapses at most 30 s after the kill, and a
// worker's recoverer, which ticks every minute from the worker's start,
// takes only leases that lapsed 30 s ago or more. So recovery comes 60 s to
// about 120 s after a kill, depending on where the surviving workers' minute
// ticks fall. The second worker starts right after the kill: its first tick
// is the earliest that can see the job, so the test takes ~65 s, not up to
// 120 s.
func TestWorkerKilledMidJob(t *testing.T) {
	bin := keyqBinary(t)
	t.Parallel()
	rdb, url := redistest.Open(t)
	up, base := faketest.Start(t, geminifake.Options{Latency: 3 * time.Second})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := "http://" + addr
	env := keyqEnv(url, base, addr, "GEMINI_RPM=1000", "GEMINI_RPD=100000", "WORKER_CONCURRENCY=4", "JOB_RETRY_DELAY=10m")
	startProc(t, "keyq api", env, bin, "api")
	victim := startProc(t, "keyq worker (killed)", env, bin, "worker")
	waitReady(t, api, 15*time.Second)

	r := post(api, "Killed Midway")
	if r.status != http.StatusAccepted {
		t.Fatalf("POST: %d %v", r.status, r.err)
	}
	testutil.Eventually(t, 15*time.Second, "the job's Gemini call to be under way", func() bool {
		return len(generateCalls(up.Calls())) == 1
	})
	if j, _ := getJob(api, r.id); j.Status != "running" {
		t.Fatalf("job is %q, want running", j.Status)
	}
	time.Sleep(500 * time.Millisecond) // well inside the 3 s call
	if rpm, _, _ := budgets(t, rdb); rpm != 1 {
		t.Errorf("rpm log holds %d calls after the first pick, want 1", rpm)
	}
	killedAt := time.Now()
	victim.kill()
	survivor := startProc(t, "keyq worker (survivor)", env, bin, "worker")

	var j job
	var lastPoll time.Time
	testutil.Eventually(t, 120*time.Second, "another worker to finish the job", func() bool {
		if time.Since(lastPoll) < 250*time.Millisecond {
			return false
		}
		lastPoll = time.Now()
		var code int
		j, code = getJob(api, r.id)
		return code == http.StatusOK && (j.Status == "succeeded" || j.Status == "failed")
	})
	doneAt := time.Now()

	calls := generateCalls(up.Calls())
	if j.Status != "succeeded" {
		t.Fatalf("job %s: %+v", j.Status, j.Error)
	}
	if len(calls) != 2 || string(calls[0].Body) != string(calls[1].Body) || calls[0].Status != 0 || calls[1].Status != http.StatusOK {
		t.Errorf("upstream calls: %s; want 2 for the job, the first cut by the kill, the second answered 200", describeCalls(calls))
	}
	// The killed run spent no retry: attempts 1, as if it never ran.
	if j.Attempts != 1 || j.Result == nil || j.Result.Attempts != 1 {
		t.Errorf("job attempts %d, result %+v; want 1 (the killed run spends no retry), with 1 Gemini call", j.Attempts, j.Result)
	}
	if n := len(logLines(survivor.logs.String(), "[Gemini] Using API Key")); n != 1 {
		t.Errorf("the survivor picked a key %d times, want 1", n)
	}

	// Picks, budgets and counts agree with the calls the upstream saw. The
	// rpm log keeps a minute (and a second) of calls: the killed run's call
	// has left it by now, the survivor's is there.
	rpm, rpd, rr := budgets(t, rdb)
	inWindow := 0
	for _, c := range calls {
		if time.Since(c.At) < 61*time.Second {
			inWindow++
		}
	}
	picks, successes, failures := keyCounts(t, api)
	if rpm != inWindow || rpd != len(calls) || picks != len(calls) || rr != len(calls) || successes != 1 || failures != 0 {
		t.Errorf("rpm log %d (calls in its window %d), rpd count %d, rotation counter %d, picks %d, successes %d, failures %d; "+
			"upstream calls %d: want every count equal to the calls, one success, no failure (the cut call never reported)",
			rpm, inWindow, rpd, rr, picks, successes, failures, len(calls))
	}
	t.Logf("killed at +0; job taken again by the survivor at +%s (upstream call 2), succeeded at +%s; "+
		"attempts %d; upstream calls %d; rpm ZCARD %d (1 just after the first pick), rpd %d, rr %d, picks %d, successes %d, failures %d",
		calls[len(calls)-1].At.Sub(killedAt).Round(100*time.Millisecond), doneAt.Sub(killedAt).Round(100*time.Millisecond),
		j.Attempts, len(calls), rpm, rpd, rr, picks, successes, failures)
}

// budgets sums the pool's rpm logs (ZCARD) and rpd counters, and reads
// its rotation counter.
func budgets(t *testing.T, rdb *redis.Client) (rpm, rpd, rr int) {
	t.Helper()
	ctx := context.Background()
	sum, err := keyring.NewAdmin(rdb, keyring.Options{Pool: gemini.DefaultModel}).Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range sum.Projects {
		rpm += p.CallsThisMinute
		rpd += p.CallsToday
	}
	rr, err = rdb.Get(ctx, "keyq:{"+gemini.DefaultModel+"}:rr").Int()
	if err != nil {
		t.Fatal(err)
	}
	return rpm, rpd, rr
}

func describeCalls(calls []geminifake.Call) string {
	var b strings.Builder
	for i, c := range calls {
		fmt.Fprintf(&b, "[%d %s status %d %s] ", i, c.At.Format("15:04:05.000"), c.Status, c.Body)
	}
	return strconv.Itoa(len(calls)) + " calls " + b.String()
}

func scanKeys(t *testing.T, rdb *redis.Client, pattern string) []string {
	t.Helper()
	keys, _, err := rdb.Scan(context.Background(), 0, pattern, 10000).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// keyCounts sums GET /api/keys's picks, successes and failures.
func keyCounts(t *testing.T, api string) (picks, successes, failures int) {
	t.Helper()
	resp, err := httpc.Get(api + "/api/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Keys []struct {
			Picks     int            `json:"picks"`
			Successes int            `json:"successes"`
			Failures  map[string]int `json:"failures"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Keys) != len(testKeys) {
		t.Fatalf("GET /api/keys: %d keys, %v", len(v.Keys), err)
	}
	for _, k := range v.Keys {
		picks += k.Picks
		successes += k.Successes
		for _, n := range k.Failures {
			failures += n
		}
	}
	return picks, successes, failures
}
