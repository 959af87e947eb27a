package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
)

// One `keyq api` and three `keyq worker` processes of the real binary, one
// redis-server, a fake Gemini: a few hundred jobs, each finished once, and
// the upstream's own record shows one global rotation.
func TestProcessesShareOneRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "keyq")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rdb, url := redistest.Open(t)
	up, base := faketest.Start(t, geminifake.Options{Latency: 5 * time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	env := append(os.Environ(), "REDIS_URL="+url, "GEMINI_API_KEY="+strings.Join(e2eKeys, ","),
		"GEMINI_BASE_URL="+base, "GEMINI_RETRY_DELAY=5ms", "API_ADDR="+addr, "WORKER_METRICS_ADDR=off", "WORKER_CONCURRENCY=8")

	var procs []*exec.Cmd
	var logs []*testutil.Logs
	for _, name := range []string{"api", "worker", "worker", "worker"} {
		cmd := exec.Command(bin, name)
		cmd.Env = env
		lg := &testutil.Logs{}
		cmd.Stdout, cmd.Stderr = lg, lg
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs, logs = append(procs, cmd), append(logs, lg)
	}
	t.Cleanup(func() {
		for i, p := range procs {
			p.Process.Signal(syscall.SIGTERM)
			if err := p.Wait(); err != nil {
				t.Errorf("process %d after SIGTERM: %v\n%s", i, err, logs[i].String())
			}
		}
	})
	api := "http://" + addr
	testutil.Eventually(t, 10*time.Second, "keyq api to answer", func() bool {
		resp, err := http.Get(api + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	const jobs = 300
	urls := make([]string, jobs)
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() { urls[i] = api + postJob(t, api, fmt.Sprintf("Character %03d", i)) })
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, u := range urls {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := http.Get(u)
				if err != nil {
					t.Error(err)
					return
				}
				var j jobView
				json.NewDecoder(resp.Body).Decode(&j)
				resp.Body.Close()
				if j.Status == "succeeded" {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Errorf("job %s did not succeed in time", u)
		})
	}
	wg.Wait()

	calls := up.Calls()
	perKey, perName := map[string]int{}, map[string]int{}
	name := regexp.MustCompile(`Character \d{3}`)
	for _, c := range calls {
		for i, k := range e2eKeys {
			if c.Key == k {
				perKey[fmt.Sprintf("#%d", i+1)]++
			}
		}
		perName[name.FindString(string(c.Body))]++
	}
	if len(calls) != jobs || len(perName) != jobs {
		t.Errorf("%d upstream calls for %d distinct jobs, want %d each exactly once", len(calls), len(perName), jobs)
	}
	if perKey["#1"] != jobs/3 || perKey["#2"] != jobs/3 || perKey["#3"] != jobs/3 {
		t.Errorf("calls per key %v, want %d each: one rotation over three processes", perKey, jobs/3)
	}
	ran := 0
	for _, lg := range logs[1:] {
		if strings.Contains(lg.String(), "[Gemini] Using API Key") {
			ran++
		}
	}
	t.Logf("calls per key %v; %d of 3 workers ran jobs", perKey, ran)
	var all strings.Builder
	for _, lg := range logs {
		all.WriteString(lg.String())
	}
	if hits := testutil.FindSecrets(all.String()+testutil.DumpRedis(t, rdb), e2eKeys...); len(hits) > 0 {
		t.Errorf("keys leaked: %v", hits)
	}
}
