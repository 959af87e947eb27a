package chaostest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/testutil"
)

// keyq on Redis Sentinel (REDIS_URL=redis-sentinel://...): a master, a
// replica and one sentinel on loopback; the master is killed with SIGKILL
// under load, the sentinel promotes the replica, and keyq follows it by
// itself. No job that got a 202 is lost.
//
// Replication is asynchronous: the master answers a write before the
// replica has it. Here the master's process dies but its host does not, so
// what it wrote to the replica's socket still arrives; a lost host or
// network could lose the last acknowledged jobs (asynq issues no WAIT, and
// min-replicas-to-write only refuses writes when the replica lags by
// seconds, it does not wait for it).
func TestSentinelFailover(t *testing.T) {
	bin := keyqBinary(t)
	t.Parallel()
	master := startRedis(t, "redis master", "--appendonly", "yes", "--appendfsync", "always")
	replica := startRedis(t, "redis replica", "--appendonly", "yes", "--appendfsync", "always",
		"--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	ctx := context.Background()
	mc := master.client()
	testutil.Eventually(t, 15*time.Second, "the replica to be in sync", func() bool {
		info, err := mc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	})

	sport := freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf") // the sentinel rewrites it
	if err := os.WriteFile(conf, fmt.Appendf(nil, "port %d\nbind 127.0.0.1\ndir %s\n"+
		"sentinel monitor mymaster 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds mymaster 1000\n"+
		"sentinel failover-timeout mymaster 10000\n", sport, dir, master.port), 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, "redis sentinel", os.Environ(), "redis-server", conf, "--sentinel")
	sc := redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", sport)})
	t.Cleanup(func() { sc.Close() })
	testutil.Eventually(t, 20*time.Second, "the sentinel to know the master and its replica", func() bool {
		rs, err := sc.Replicas(ctx, "mymaster").Result()
		return err == nil && len(rs) == 1
	})

	up, base := faketest.Start(t, geminifake.Options{Latency: 50 * time.Millisecond})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := "http://" + addr
	env := keyqEnv(fmt.Sprintf("redis-sentinel://127.0.0.1:%d/0?master=mymaster", sport), base, addr,
		"WORKER_CONCURRENCY=8", "DASHBOARD_PASSWORD="+dashboardPassword)
	procs := []*proc{startProc(t, "keyq api", env, bin, "api"),
		startProc(t, "keyq worker 1", env, bin, "worker"), startProc(t, "keyq worker 2", env, bin, "worker")}
	waitReady(t, api, 15*time.Second)
	if code := dashboardQueues(api); code != http.StatusOK {
		t.Errorf("dashboard on the sentinel URL: GET /monitoring/api/queues answered %d", code)
	}

	stop := load(api, "Sentinel", 3, 30*time.Millisecond)
	time.Sleep(2 * time.Second)
	killedAt := time.Now()
	master.kill9()
	testutil.Eventually(t, 30*time.Second, "the sentinel to promote the replica", func() bool {
		a, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		return err == nil && len(a) == 2 && a[1] == strconv.Itoa(replica.port)
	})
	promotedAt := time.Now()
	var probe postResult
	testutil.Eventually(t, 30*time.Second, "keyq to accept a job on the new master", func() bool {
		probe = post(api, "After failover")
		return probe.status == http.StatusAccepted
	})
	acceptAt := time.Now()
	testutil.Eventually(t, 30*time.Second, "a worker to run a job again", func() bool {
		for _, c := range generateCalls(up.Calls()) {
			if c.At.After(promotedAt) {
				return true
			}
		}
		return false
	})
	workAt := time.Now()
	time.Sleep(2 * time.Second)
	results := append(stop(), probe)

	var acked []string
	var lat503 []time.Duration
	var maxLat time.Duration
	statuses := map[int]int{}
	for _, r := range results {
		maxLat = max(maxLat, r.latency)
		statuses[r.status]++
		switch {
		case r.err != nil:
			t.Errorf("POST at +%s: %v (after %s)", r.start.Sub(killedAt).Round(time.Millisecond), r.err, r.latency)
		case r.status == http.StatusAccepted:
			acked = append(acked, r.id)
		case r.status == http.StatusServiceUnavailable && r.code == "unavailable":
			lat503 = append(lat503, r.latency)
		default:
			t.Errorf("POST at +%s: %d %q, want 202 or 503 JSON", r.start.Sub(killedAt).Round(time.Millisecond), r.status, r.code)
		}
	}
	if maxLat > 5*time.Second {
		t.Errorf("slowest POST took %s; during a failover it must fail fast", maxLat)
	}
	final := settle(t, api, acked, 150*time.Second)
	c := count(final)
	if c["succeeded"]+c["failed"] != len(acked) {
		t.Errorf("of %d acknowledged jobs: %v; want every one succeeded or failed, none lost", len(acked), c)
	}
	calls := generateCalls(up.Calls())
	perJob := map[string]int{}
	for _, call := range calls {
		perJob[string(call.Body)]++
	}
	t.Logf("sentinel failover: %d POSTs %v; acked %d: %v; LOST %d", len(results), statuses, len(acked), c, c["lost"])
	t.Logf("master killed at +0: replica promoted at +%s, keyq's first 202 at +%s, first upstream call at +%s; "+
		"503 latency p50 %s max %s (n=%d); slowest POST %s; upstream calls %d for %d jobs (%d re-runs)",
		promotedAt.Sub(killedAt).Round(time.Millisecond), acceptAt.Sub(killedAt).Round(time.Millisecond),
		workAt.Sub(killedAt).Round(time.Millisecond), pct(lat503, 50).Round(time.Millisecond),
		pct(lat503, 100).Round(time.Millisecond), len(lat503), maxLat.Round(time.Millisecond),
		len(calls), len(perJob), len(calls)-len(perJob))
	if code := dashboardQueues(api); code != http.StatusOK {
		t.Errorf("dashboard after the failover: GET /monitoring/api/queues answered %d", code)
	}
	for _, p := range procs {
		if p.exited() {
			t.Errorf("%s exited during the failover: %v", p.name, p.err)
		}
	}
}

const dashboardPassword = "chaos-dashboard-password"

func dashboardQueues(api string) int {
	req, _ := http.NewRequest(http.MethodGet, api+"/monitoring/api/queues", nil)
	req.SetBasicAuth("admin", dashboardPassword)
	resp, err := httpc.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A bad redis-sentinel:// URL stops keyq at start with status 2 and a
// message naming REDIS_URL, never echoing the URL's password.
func TestSentinelURLErrors(t *testing.T) {
	bin := keyqBinary(t)
	t.Parallel()
	for url, want := range map[string]string{
		"redis-sentinel://:s3cret-pw@127.0.0.1:26379/0":                      "?master=",
		"redis-sentinel://:s3cret-pw@127.0.0.1:26379/x?master=m":             "database number",
		"redis-sentinel://:s3cret-pw@127.0.0.1:26379/0?master=m&pool_size=3": "only the query parameters",
		"redis-sentinel://:s3cret-pw@127.0.0.1:1,127.0.0.1/0?master=m":       "REDIS_URL must look like",
	} {
		cmd := exec.Command(bin, "api")
		cmd.Env = append(os.Environ(), "REDIS_URL="+url, "API_ADDR=127.0.0.1:0")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "REDIS_URL") ||
			!strings.Contains(string(out), want) || strings.Contains(string(out), "s3cret") {
			t.Errorf("REDIS_URL=%s: %v\n%s\nwant exit 2, REDIS_URL named, %q, no password", url, err, out, want)
		}
	}
}
