package chaostest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/testutil"
)

// Redis killed with SIGKILL under load, then started again on the same data:
// while it is down the API answers 503 JSON at once and /readyz fails; when
// it is back, API and workers carry on by themselves; and every job that got
// a 202 finishes. Run once per persistence setting, to measure what each
// keeps: appendfsync always must keep every acknowledged job; everysec and
// RDB snapshots alone are measured and logged.
//
// Jobs a worker finishes while Redis is down take 1-2 minutes more: their
// result cannot be stored, and asynq v0.26.0 cannot hand them back either
// (its processor retries the move to "retry" with a context it has already
// cancelled: processor.go, retry/markAsComplete, `defer cancel()`), so they
// wait for asynq's lease recovery and run a second time. The test waits for
// that and logs how many there were.
func TestRedisKilledUnderLoad(t *testing.T) {
	bin := keyqBinary(t)
	t.Parallel()
	for _, mode := range []struct {
		name     string
		args     []string
		mustKeep bool // every 202'd job must survive the kill
	}{
		{"appendfsync=always", []string{"--appendonly", "yes", "--appendfsync", "always"}, true},
		{"appendfsync=everysec", []string{"--appendonly", "yes", "--appendfsync", "everysec"}, false},
		{"rdb-snapshots-only", []string{"--appendonly", "no", "--save", "3600 1 300 100 60 10000"}, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			redisKilledUnderLoad(t, bin, mode.args, mode.mustKeep)
		})
	}
}

func redisKilledUnderLoad(t *testing.T, bin string, redisArgs []string, mustKeep bool) {
	rs := startRedis(t, "redis-server", redisArgs...)
	up, base := faketest.Start(t, geminifake.Options{Latency: 50 * time.Millisecond})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := "http://" + addr
	env := keyqEnv("redis://"+rs.addr()+"/0", base, addr, "WORKER_CONCURRENCY=8")
	procs := []*proc{startProc(t, "keyq api", env, bin, "api"),
		startProc(t, "keyq worker 1", env, bin, "worker"), startProc(t, "keyq worker 2", env, bin, "worker")}
	waitReady(t, api, 15*time.Second)

	// A burst first: what the fsync policy costs an acknowledgement.
	burst := load(api, "Burst", 8, 0)
	time.Sleep(500 * time.Millisecond)
	burstResults := burst()
	var burstLat []time.Duration
	for _, r := range burstResults {
		if r.status != http.StatusAccepted {
			t.Fatalf("POST before the kill: %d %s %v", r.status, r.code, r.err)
		}
		burstLat = append(burstLat, r.latency)
	}

	stop := load(api, "Load", 3, 30*time.Millisecond)
	time.Sleep(2 * time.Second) // load before the kill
	killedAt := time.Now()
	rs.kill9()

	// Down for 3 s: /readyz must fail, quickly, with JSON.
	var readyz []int
	var readyzMax time.Duration
	for time.Since(killedAt) < 3*time.Second {
		start := time.Now()
		resp, err := httpc.Get(api + "/readyz")
		if err != nil {
			t.Errorf("GET /readyz with Redis down: %v", err)
		} else {
			resp.Body.Close()
			readyz = append(readyz, resp.StatusCode)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Errorf("GET /readyz with Redis down: %d %s, want 503 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
		readyzMax = max(readyzMax, time.Since(start))
		time.Sleep(200 * time.Millisecond)
	}

	restartAt := time.Now()
	rs.start()
	backAt := time.Now()
	waitReady(t, api, 30*time.Second)
	readyAt := time.Now()
	var probe postResult
	testutil.Eventually(t, 30*time.Second, "a POST to be accepted again", func() bool {
		probe = post(api, "After restart")
		return probe.status == http.StatusAccepted
	})
	acceptAt := time.Now()
	testutil.Eventually(t, 30*time.Second, "a worker to call the upstream again", func() bool {
		for _, c := range generateCalls(up.Calls()) {
			if c.At.After(backAt) {
				return true
			}
		}
		return false
	})
	workAt := time.Now()
	time.Sleep(2 * time.Second) // load after the recovery
	results := append(stop(), probe)
	results = append(results, burstResults...)

	// Every answer is a 202 or a 503 JSON error; none hangs.
	var acked []string
	var lat503 []time.Duration
	var maxLat time.Duration
	statuses := map[int]int{}
	downStatuses := map[int]int{}
	for _, r := range results {
		maxLat = max(maxLat, r.latency)
		statuses[r.status]++
		if !r.start.Before(killedAt) && r.start.Before(backAt) {
			downStatuses[r.status]++
		}
		switch {
		case r.err != nil:
			t.Errorf("POST at +%s: %v (after %s)", r.start.Sub(killedAt).Round(time.Millisecond), r.err, r.latency)
		case r.status == http.StatusAccepted:
			acked = append(acked, r.id)
		case r.status == http.StatusServiceUnavailable && r.code == "unavailable" && strings.HasPrefix(r.ctype, "application/json"):
			lat503 = append(lat503, r.latency)
		default:
			t.Errorf("POST at +%s: %d %q %s, want 202 or 503 JSON", r.start.Sub(killedAt).Round(time.Millisecond), r.status, r.code, r.ctype)
		}
	}
	if len(lat503) == 0 {
		t.Errorf("no POST got a 503 while Redis was down (statuses %v)", downStatuses)
	}
	if maxLat > 5*time.Second {
		t.Errorf("slowest POST took %s; with Redis down it must fail fast", maxLat)
	}

	// Every acknowledged job reaches succeeded or failed. A job in a
	// worker's hands when Redis died comes back through asynq's lease
	// recovery (60-120 s, see above): allow for it.
	final := settle(t, api, acked, 150*time.Second)
	c := count(final)
	lost := c["lost"]
	if stuck := len(acked) - c["succeeded"] - c["failed"] - lost; stuck > 0 {
		t.Errorf("%d acknowledged jobs neither finished nor gone after 150s: %v", stuck, c)
	}
	if mustKeep && lost > 0 {
		t.Errorf("%d of %d acknowledged jobs lost", lost, len(acked))
	}
	slow := 0
	for id, o := range final {
		if o.after > 20*time.Second {
			slow++
			if slow <= 1 {
				t.Logf("job %s took %s to settle: %s after %d runs", id, o.after.Round(time.Second), o.state, o.job.Attempts)
				for _, p := range procs[1:] {
					for _, l := range logLines(p.logs.String(), id) {
						t.Logf("  %s: %s", p.name, l)
					}
				}
			}
		}
	}
	if slow > 0 {
		t.Logf("%d jobs settled only after 20s or more", slow)
	}
	calls := generateCalls(up.Calls())
	perJob := map[string]int{}
	for _, call := range calls {
		perJob[string(call.Body)]++
	}
	reruns := 0
	for _, n := range perJob {
		reruns += n - 1
	}
	t.Logf("redis %v: %d POSTs (%v), %d while down (%v); acked %d: %v; LOST %d",
		redisArgs, len(results), statuses, sum(downStatuses), downStatuses, len(acked), c, lost)
	t.Logf("burst of 8 posters before the kill: %d POSTs in 0.5s, 202 latency p50 %s p99 %s",
		len(burstLat), pct(burstLat, 50).Round(10*time.Microsecond), pct(burstLat, 99).Round(10*time.Microsecond))
	t.Logf("503 latency p50 %s p99 %s max %s (n=%d); slowest POST %s; /readyz while down %v, slowest %s",
		pct(lat503, 50).Round(time.Microsecond), pct(lat503, 99).Round(time.Microsecond), pct(lat503, 100).Round(time.Microsecond),
		len(lat503), maxLat.Round(time.Millisecond), readyz, readyzMax.Round(time.Millisecond))
	t.Logf("redis restart to PING %s; after it: /readyz 200 in %s, first 202 in %s, first upstream call in %s; "+
		"upstream calls %d for %d distinct jobs (%d re-runs)",
		backAt.Sub(restartAt).Round(time.Millisecond), readyAt.Sub(backAt).Round(time.Millisecond),
		acceptAt.Sub(backAt).Round(time.Millisecond), workAt.Sub(backAt).Round(time.Millisecond),
		len(calls), len(perJob), reruns)
	for _, p := range procs {
		if p.exited() {
			t.Errorf("%s exited during the outage: %v", p.name, p.err)
		}
	}
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
