package main

import (
	"context"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyq/keyq/internal/testutil"
)

// A worker started while Redis is away says so once, clearly, keeps the
// libraries' connection errors at DEBUG instead of flooding stderr, does
// not claim to be ready, and says when Redis is back (issue 14).
func TestRedisAwayIsOneClearLine(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	port := freeLowPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	t.Setenv("REDIS_URL", "redis://"+addr+"/0")
	t.Setenv("GEMINI_API_KEY", "k1-EXAMPLE-redis-down")
	t.Setenv("WORKER_METRICS_ADDR", "off")
	t.Setenv("LOG_LEVEL", "debug")
	ctx, cancel := context.WithCancel(context.Background())
	w := startCmd(t, ctx, "worker")
	t.Cleanup(func() { cancel(); <-w.done })
	loud := func() []string {
		var out []string
		for _, l := range strings.Split(w.logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				out = append(out, l)
			}
		}
		return out
	}
	testutil.Eventually(t, 10*time.Second, "the outage line and asynq's own retries (at DEBUG)", func() bool {
		logs := w.logs.String()
		return strings.Contains(logs, "cannot reach Redis at "+addr) && strings.Count(logs, "src=asynq") >= 3
	})
	if l := loud(); len(l) > 2 {
		t.Errorf("%d WARN/ERROR lines while Redis is away, want the outage line (and at most one about the keys):\n%s", len(l), strings.Join(l, "\n"))
	}
	if logs := w.logs.String(); strings.Contains(logs, "worker ready") || !strings.Contains(logs, "once Redis answers") {
		t.Errorf("the worker claims to be ready without Redis:\n%s", logs)
	}
	srv := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	testutil.Eventually(t, 10*time.Second, "the worker to say Redis is back", func() bool {
		return strings.Contains(w.logs.String(), "Redis at "+addr+" is back")
	})
}

// freeLowPort picks a free port below Linux's ephemeral range, so that no
// outgoing connection takes it before the test binds it.
func freeLowPort(t *testing.T) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}
