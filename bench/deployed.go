package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/tasks"
)

// partDeployed: keyq's overhead over raw asynq with every part its own
// process, as deployed, measured from outside the processes: throughput,
// CPU per job per process (/proc and Redis's INFO cpu) and Redis commands
// per job. The fake upstream and the load generator run but are reported
// apart from the processes whose cost is keyq's (or raw asynq's).
func partDeployed(ctx context.Context, env *benchEnv, rep *report) error {
	dir, err := os.MkdirTemp("", "keyq-deployed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "keyq")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/keyq").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/keyq: %w: %s", err, out)
	}
	n := *flagDeployedN
	var raws, keyqs, floors, befores []*deployedRun
	for i := 0; i < *flagReps; i++ {
		r, err := runDeployed(ctx, env, dir, bin, "raw", n)
		if err != nil {
			return err
		}
		k, err := runDeployed(ctx, env, dir, bin, "warn", n)
		if err != nil {
			return err
		}
		f, err := runDeployed(ctx, env, dir, bin, "floor", n)
		if err != nil {
			return err
		}
		raws, keyqs, floors = append(raws, r), append(keyqs, k), append(floors, f)
		if *flagDeployedB != "" {
			b, err := runDeployed(ctx, env, dir, *flagDeployedB, "warn", n)
			if err != nil {
				return fmt.Errorf("-deployed-before: %w", err)
			}
			befores = append(befores, b)
		}
	}
	info, err := runDeployed(ctx, env, dir, bin, "info", n)
	if err != nil {
		return err
	}
	rep.add(deployedReport(rep, n, raws, keyqs, info))
	rep.add(deployedFloor(n, raws, floors, keyqs))
	if befores != nil {
		rep.add(deployedBefore(n, raws, keyqs, befores))
	}
	return nil
}

// deployedRun is one measured window: n jobs from the first submit to
// asynq's completed set holding all n.
type deployedRun struct {
	side    string // "raw", or keyq's LOG_LEVEL: "warn", "info"
	n       int
	elapsed time.Duration
	cpu     map[string]time.Duration // per process, plus redis-server and the load generator
	logged  map[string]int64         // bytes logged per process
	calls   map[string]int64         // Redis commands, the bench's own removed
	reads   int64                    // Redis socket reads: client round trips, near enough
	load    string                   // 1-minute load average at the end: how busy the machine was
}

func (r *deployedRun) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// runDeployed starts one side's processes on an empty Redis, measures n
// jobs through them and stops them.
func runDeployed(ctx context.Context, env *benchEnv, dir, bin, side string, n int) (*deployedRun, error) {
	rdb := env.newRDB()
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return nil, err
	}
	var d *deployment
	var err error
	switch side {
	case "raw":
		d, err = startRaw(dir, env.url, rdb)
	case "floor":
		d, err = startFloor(dir, bin, env.url, rdb)
	default:
		d, err = startKeyq(dir, bin, env.url, side, rdb)
	}
	if err != nil {
		return nil, err
	}
	defer d.stop()
	pid := rdb.InfoMap(ctx, "server").Item("Server", "process_id")
	log.Printf("deployed %s: %s, redis-server pid %s (attach here)", side, d.pids(), pid)
	before, err := takeSnap(ctx, rdb, d.procs)
	if err != nil {
		return nil, err
	}
	el, samples, err := loadAndWait(ctx, rdb, d.queue, n, d.submit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", side, err)
	}
	after, err := takeSnap(ctx, rdb, d.procs)
	if err != nil {
		return nil, err
	}
	r := after.minus(before, side, n, el)
	// The bench's own commands in the window: the completion sampler's
	// ZCARDs and the closing INFO (one socket read each).
	r.calls["zcard"] -= int64(samples)
	delete(r.calls, "info")
	r.reads -= int64(samples) + 1
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.load = strings.Fields(string(b))[0]
	}
	log.Printf("deployed %s: %d jobs in %s, %.0f jobs/s", side, n, el.Round(time.Millisecond), r.rate())
	return r, nil
}

// startFloor starts asynq behind HTTP on both sides: `keyq fake`, a
// minimal HTTP API that enqueues (the bench, -role rawapi) and the raw
// worker calling the fake for each task (-upstream).
func startFloor(dir, bin, url string, rdb *redis.Client) (*deployment, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var addr [2]string // fake, api
	for i := range addr {
		if addr[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	d := &deployment{queue: rawQueue}
	for _, p := range []struct {
		name, bin string
		args, env []string
	}{
		{"keyq fake", bin, []string{"fake"}, []string{"FAKE_ADDR=" + addr[0], "SIM_LATENCY=0", "SIM_FAILURE_RATE=0", "SIM_429_RATE=0", "LOG_LEVEL=warn"}},
		{"rawapi", self, []string{"-role", "rawapi", "-redis", url, "-addr", addr[1]}, nil},
		{"rawworker", self, []string{"-role", "rawworker", "-redis", url, "-concurrency", "50", "-upstream", "http://" + addr[0]}, nil},
	} {
		c, err := startChild(dir, p.name, p.bin, p.args, baseEnv(url, p.env...))
		if err != nil {
			d.stop()
			return nil, err
		}
		d.procs = append(d.procs, c)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	err = waitReady("keyq fake, rawapi and rawworker", d.procs, func() bool {
		c, err := net.Dial("tcp", addr[1])
		if err == nil {
			c.Close()
		}
		return err == nil && workerUp(insp, rawQueue)
	})
	if err != nil {
		d.stop()
		return nil, err
	}
	d.submit = keyqSubmit("http://" + addr[1] + "/api/analyze-character")
	return d, nil
}

// deployment is one side's running processes and how a job is submitted.
type deployment struct {
	procs  []*child
	queue  string
	submit func(context.Context) error
}

func (d *deployment) pids() string {
	var s []string
	for _, p := range d.procs {
		s = append(s, fmt.Sprintf("%s pid %d", p.name, p.cmd.Process.Pid))
	}
	return strings.Join(s, ", ")
}

// stop stops the processes, the last started first (the worker before
// the upstream it calls).
func (d *deployment) stop() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].stop()
	}
}

// baseEnv is a child's whole environment: nothing is inherited, so a
// keyq variable set in the shell cannot change what is measured.
func baseEnv(url string, kv ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "REDIS_URL=" + url}, kv...)
}

// startRaw starts raw asynq's worker (the bench re-executed); jobs are
// enqueued from the bench with asynq.Client, as an application would.
func startRaw(dir, url string, rdb *redis.Client) (*deployment, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	w, err := startChild(dir, "rawworker", self, []string{"-role", "rawworker", "-redis", url, "-concurrency", "50"}, baseEnv(url))
	if err != nil {
		return nil, err
	}
	d := &deployment{procs: []*child{w}, queue: rawQueue}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if err := waitReady("rawworker", d.procs, func() bool { return workerUp(insp, rawQueue) }); err != nil {
		d.stop()
		return nil, err
	}
	cli := asynq.NewClientFromRedisClient(rdb)
	d.submit = func(ctx context.Context) error {
		_, err := cli.EnqueueContext(ctx, asynq.NewTask("raw", jobBody), asynq.Queue(rawQueue),
			asynq.TaskID(uuid.NewString()), asynq.Retention(24*time.Hour), asynq.MaxRetry(4))
		return err
	}
	return d, nil
}

// deployedKeys are three fake-looking keys of three projects, 39
// characters like Google's.
var deployedKeys = "p1:AIzaSyBench01" + strings.Repeat("x", 23) + ",p2:AIzaSyBench02" + strings.Repeat("y", 23) +
	",p3:AIzaSyBench03" + strings.Repeat("z", 23)

// startKeyq starts keyq fake, api and worker from the built binary, each
// with its defaults except what the bench must set; level is LOG_LEVEL of
// the api and the worker.
func startKeyq(dir, bin, url, level string, rdb *redis.Client) (*deployment, error) {
	var addr [3]string // fake, api, worker metrics
	for i := range addr {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addr[i] = a
	}
	d := &deployment{queue: tasks.Queue}
	for _, p := range []struct {
		name string
		env  []string
	}{
		{"keyq fake", []string{"FAKE_ADDR=" + addr[0], "SIM_LATENCY=0", "SIM_FAILURE_RATE=0", "SIM_429_RATE=0", "LOG_LEVEL=warn"}},
		{"keyq api", []string{"API_ADDR=" + addr[1], "LOG_LEVEL=" + level}},
		{"keyq worker", []string{"WORKER_CONCURRENCY=50", "GEMINI_API_KEY=" + deployedKeys, "GEMINI_BASE_URL=http://" + addr[0],
			"WORKER_METRICS_ADDR=" + addr[2], "LOG_LEVEL=" + level}},
	} {
		c, err := startChild(dir, p.name, bin, []string{strings.TrimPrefix(p.name, "keyq ")}, baseEnv(url, p.env...))
		if err != nil {
			d.stop()
			return nil, err
		}
		d.procs = append(d.procs, c)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	err := waitReady("keyq fake, api and worker", d.procs, func() bool {
		c, err := net.Dial("tcp", addr[0])
		if err == nil {
			c.Close()
		}
		return err == nil && httpOK("http://"+addr[1]+"/readyz") && workerUp(insp, tasks.Queue)
	})
	if err != nil {
		d.stop()
		return nil, err
	}
	d.submit = keyqSubmit("http://" + addr[1] + "/api/analyze-character")
	return d, nil
}

// keyqSubmit POSTs a job with a pooled client (a client that opened a
// connection per request would be measuring TCP setup).
func keyqSubmit(url string) func(context.Context) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost, tr.MaxIdleConns = 64, 64
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(jobBody))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("POST: %d %s", resp.StatusCode, b)
		}
		return nil
	}
}

// loadAndWait submits n jobs from 16 goroutines and returns when asynq's
// completed set of queue q holds n tasks, sampled every 50 ms (a poll per
// job would be the client's cost, not the service's), and how many
// samples it took.
func loadAndWait(ctx context.Context, rdb *redis.Client, q string, n int, submit func(context.Context) error) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var next atomic.Int64
	errc := make(chan error, 1)
	t0 := time.Now()
	for g := 0; g < 16; g++ {
		go func() {
			for next.Add(1) <= int64(n) {
				if err := submit(ctx); err != nil {
					select {
					case errc <- err:
					default:
					}
					cancel()
					return
				}
			}
		}()
	}
	key := "asynq:{" + q + "}:completed"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var samples int
	var done int64
	for {
		select {
		case err := <-errc:
			return 0, samples, fmt.Errorf("submit: %w", err)
		case <-ctx.Done():
			return 0, samples, fmt.Errorf("%d of %d jobs completed in 5 min", done, n)
		case <-tick.C:
		}
		samples++
		done, _ = rdb.ZCard(ctx, key).Result()
		if done >= int64(n) {
			return time.Since(t0), samples, nil
		}
	}
}

// snap is what is read before and after a measured window.
type snap struct {
	cpu    map[string]time.Duration
	logged map[string]int64
	calls  map[string]int64
	reads  int64
}

func takeSnap(ctx context.Context, rdb *redis.Client, procs []*child) (*snap, error) {
	s := &snap{cpu: map[string]time.Duration{"load generator": selfCPU()}, logged: map[string]int64{}}
	for _, p := range procs {
		c, err := p.cpu()
		if err != nil {
			return nil, err
		}
		s.cpu[p.name], s.logged[p.name] = c, p.logSize()
	}
	info, err := rdb.Info(ctx, "cpu", "stats", "commandstats").Result()
	if err != nil {
		return nil, err
	}
	s.calls = parseCommandStats(info)
	var user, sys float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "used_cpu_user":
			user, _ = strconv.ParseFloat(v, 64)
		case "used_cpu_sys":
			sys, _ = strconv.ParseFloat(v, 64)
		case "total_reads_processed":
			s.reads, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	s.cpu["redis-server"] = time.Duration((user + sys) * float64(time.Second))
	return s, nil
}

func (s *snap) minus(b *snap, side string, n int, el time.Duration) *deployedRun {
	r := &deployedRun{side: side, n: n, elapsed: el, cpu: map[string]time.Duration{}, logged: map[string]int64{},
		calls: map[string]int64{}, reads: s.reads - b.reads}
	for k, v := range s.cpu {
		r.cpu[k] = v - b.cpu[k]
	}
	for k, v := range s.logged {
		r.logged[k] = v - b.logged[k]
	}
	for k, v := range s.calls {
		if d := v - b.calls[k]; d != 0 {
			r.calls[k] = d
		}
	}
	return r
}
