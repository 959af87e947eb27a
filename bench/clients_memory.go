package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyq/keyq/client"
	"github.com/keyq/keyq/tasks"
)

// waiters is how many clients wait on one keyq api process at once.
const waiters = 1000

// clientsWaiterMemory starts a real `keyq api` process and measures its
// RSS with 1,000 long-polls, then 1,000 event streams, held open on queued
// jobs (no worker runs them).
func clientsWaiterMemory(ctx context.Context, env *benchEnv, rep *report, b *strings.Builder) error {
	bin := filepath.Join(os.TempDir(), "keyq-bench-clients")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/keyq").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	rdb := env.newRDB()
	defer rdb.Close()
	o := rdb.Options()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "api")
	cmd.Env = append(os.Environ(), fmt.Sprintf("REDIS_URL=redis://%s/%d", o.Addr, o.DB), "API_ADDR="+addr, "LOG_LEVEL=error")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	base := "http://" + addr
	for i := 0; ; i++ {
		if r, err := http.Get(base + "/readyz"); err == nil && r.StatusCode == 200 {
			r.Body.Close()
			break
		}
		if i > 100 {
			return fmt.Errorf("keyq api did not get ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, _ := client.New(base, client.Options{})
	ids := make([]string, waiters)
	for i := range ids {
		acc, err := c.SubmitAnalyzeCharacter(ctx, tasks.AnalyzeCharacter{Name: "Waiter"}, client.SubmitOptions{})
		if err != nil {
			return err
		}
		ids[i] = acc.ID
	}
	idle := rssKB(cmd.Process.Pid)
	b.WriteString("### 1,000 waiters on one keyq api process (VmRSS)\n\n| | RSS | per waiter |\n|---|---|---|\n")
	fmt.Fprintf(b, "| idle, 1,000 jobs queued | %d MiB | |\n", idle/1024)
	for _, way := range []string{"?wait=60s", "/events"} {
		rss := holdWaiters(base, ids, way, cmd.Process.Pid)
		fmt.Fprintf(b, "| %d x `%s` held open | %d MiB | %.1f KiB |\n", waiters, way, rss/1024, float64(rss-idle)/waiters)
		if rss-idle > 50*1024 {
			rep.note("clients: 1,000 %s waiters cost %d MiB of RSS (goal < 50 MB)", way, (rss-idle)/1024)
		}
	}
	b.WriteString("\n")
	return nil
}

// holdWaiters opens one request per job, each on its own connection, waits
// until the API answered every one's headers or 5 s passed, and returns the
// process's RSS then.
func holdWaiters(base string, ids []string, way string, pid int) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: -1, DisableKeepAlives: true}
	hc := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	var started sync.WaitGroup
	started.Add(len(ids))
	for _, id := range ids {
		wg.Go(func() {
			u := base + "/api/jobs/" + id + way
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			once := sync.OnceFunc(started.Done)
			defer once()
			resp, err := hc.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			if way == "/events" {
				_, _ = bufio.NewReader(resp.Body).ReadString('\n') // the retry line: the stream is held
				once()
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		})
	}
	done := make(chan struct{})
	go func() { started.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second): // long-polls send no headers until they end
	}
	rss := rssKB(pid)
	cancel()
	wg.Wait()
	return rss
}

func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}
