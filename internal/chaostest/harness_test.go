package chaostest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/testutil"
)

var testKeys = []string{
	"AIzaSyEXAMPLE-chaos-key-number-one-0001",
	"AIzaSyEXAMPLE-chaos-key-number-two-0002",
	"AIzaSyEXAMPLE-chaos-key-number-three-03",
}

var (
	binDir   string
	buildBin sync.Once
	binPath  string
	binErr   error
)

func TestMain(m *testing.M) {
	// These tests spend their time waiting on asynq's timers (leases,
	// recoverer, failover), not on the CPU: run them all at once rather
	// than GOMAXPROCS at a time, unless -parallel says otherwise.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "8")
	}
	var err error
	if binDir, err = os.MkdirTemp("", "keyq-chaostest-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// keyqBinary builds cmd/keyq once per test binary. Skipped with -short, and
// without redis-server (scripts/test.sh installs it).
func keyqBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("kills and restarts processes; slow")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("no redis-server on PATH: run scripts/test.sh, or apt-get install -y redis-server")
	}
	buildBin.Do(func() {
		binPath = filepath.Join(binDir, "keyq")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/keyq/keyq/cmd/keyq").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a child process whose output is kept. It gets SIGKILL if the test
// binary dies, so a test that times out leaves nothing behind.
type proc struct {
	name string
	cmd  *exec.Cmd
	logs *testutil.Logs
	done chan struct{}
	err  error // of Wait, once done is closed
}

func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, logs: &testutil.Logs{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits:
		// this goroutine keeps its thread until the child is gone.
		runtime.LockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s output (last 4 KiB) ---\n%s", p.name, tail(p.logs.String(), 4096))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to d for the exit; then SIGKILL.
func (p *proc) stop(t *testing.T, d time.Duration) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.kill()
		return fmt.Errorf("%s still running %s after SIGTERM: killed", p.name, d)
	}
}

// nextPort walks ports below Linux's ephemeral range (32768 and up). A
// port from net.Listen(":0") is ephemeral: between closing that listener
// and redis-server binding it (or binding it again after a kill -9), an
// outgoing connection of a parallel test may take it. Below the range only
// listeners can, and this counter keeps ours apart.
var nextPort atomic.Int32

func init() { nextPort.Store(int32(rand.IntN(10000))) }

func freePort(t *testing.T) int {
	t.Helper()
	for range 500 {
		p := 20000 + int(nextPort.Add(1))%12000
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

// redisServer is a redis-server of the test's own, on a fixed port and data
// directory, so it can be killed and started again on the same data.
type redisServer struct {
	t    *testing.T
	name string
	port int
	dir  string
	args []string
	p    *proc
}

// startRedis starts redis-server with args after the port, bind and dir
// settings (persistence, replicaof...). Default: no RDB snapshots.
func startRedis(t *testing.T, name string, args ...string) *redisServer {
	t.Helper()
	r := &redisServer{t: t, name: name, port: freePort(t), dir: t.TempDir(), args: args}
	r.start()
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--maxmemory-policy", "noeviction"}, r.args...)
	r.p = startProc(r.t, r.name, os.Environ(), "redis-server", args...)
	c := redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	testutil.Eventually(r.t, 15*time.Second, r.name+" to answer PING", func() bool {
		if r.p.exited() {
			r.t.Fatalf("%s exited: %v\n%s", r.name, r.p.err, r.p.logs.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

func (r *redisServer) kill9() { r.p.kill() }

func (r *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// keyqEnv is the environment of keyq processes: the test's keys, the fake
// upstream, quick retries, no metrics port.
func keyqEnv(redisURL, upstream, apiAddr string, extra ...string) []string {
	return append(os.Environ(), append([]string{
		"REDIS_URL=" + redisURL, "GEMINI_API_KEY=" + strings.Join(testKeys, ","),
		"GEMINI_BASE_URL=" + upstream, "GEMINI_RETRY_DELAY=5ms", "API_ADDR=" + apiAddr,
		"WORKER_METRICS_ADDR=off", "JOB_RETRY_DELAY=1s", "GEMINI_API_KEY_FILE=",
	}, extra...)...)
}

var httpc = &http.Client{Timeout: 15 * time.Second}

// waitReady waits for /readyz to answer 200.
func waitReady(t *testing.T, api string, d time.Duration) {
	t.Helper()
	testutil.Eventually(t, d, "keyq api /readyz to answer 200", func() bool {
		return getStatus(api+"/readyz") == http.StatusOK
	})
}

func getStatus(url string) int {
	resp, err := httpc.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// postResult is one POST /api/analyze-character.
type postResult struct {
	start   time.Time
	latency time.Duration
	status  int    // 0: no answer (err)
	code    string // error.code of a JSON error body
	ctype   string
	id      string // of a 202
	err     error
}

func post(api, name string) postResult {
	r := postResult{start: time.Now()}
	resp, err := httpc.Post(api+"/api/analyze-character", "application/json",
		strings.NewReader(fmt.Sprintf(`{"name":%q,"description":"chaos test"}`, name)))
	if err != nil {
		r.latency, r.err = time.Since(r.start), err
		return r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r.latency, r.status, r.ctype = time.Since(r.start), resp.StatusCode, resp.Header.Get("Content-Type")
	if err != nil {
		r.err = err
		return r
	}
	var v struct {
		ID    string `json:"id"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		r.err = fmt.Errorf("%d answer is not JSON: %q", resp.StatusCode, body)
		return r
	}
	r.id, r.code = v.ID, v.Error.Code
	return r
}

// load posts jobs from n goroutines, each pausing gap between posts, until
// stop is called; stop returns every result in the order they started.
func load(api, prefix string, n int, gap time.Duration) (stop func() []postResult) {
	var (
		mu   sync.Mutex
		out  []postResult
		wg   sync.WaitGroup
		quit = make(chan struct{})
	)
	for g := range n {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				r := post(api, fmt.Sprintf("%s %d-%05d", prefix, g, i))
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
				time.Sleep(gap)
			}
		})
	}
	return func() []postResult {
		close(quit)
		wg.Wait()
		slices.SortFunc(out, func(a, b postResult) int { return a.start.Compare(b.start) })
		return out
	}
}

// job is what GET /api/jobs/{id} answers.
type job struct {
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Result   *struct {
		Key      string `json:"key"`
		Attempts int    `json:"attempts"`
	} `json:"result"`
	Error *struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
}

// getJob answers the job, its HTTP status (404: lost) or 0 when the API did
// not answer.
func getJob(api, id string) (job, int) {
	var j job
	resp, err := httpc.Get(api + "/api/jobs/" + id)
	if err != nil {
		return j, 0
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if json.NewDecoder(resp.Body).Decode(&j) != nil {
			return j, 0
		}
	}
	return j, resp.StatusCode
}

// outcome is where a job ended up: "succeeded", "failed", "lost" (404), or
// the last status seen when the deadline passed.
type outcome struct {
	state string
	after time.Duration // from the start of settle
	job   job
}

// settle polls the ids, in rounds, until each is succeeded, failed or gone
// (404), or the deadline passes.
func settle(t *testing.T, api string, ids []string, deadline time.Duration) map[string]outcome {
	t.Helper()
	final := make(map[string]outcome, len(ids))
	start := time.Now()
	pending := slices.Clone(ids)
	for len(pending) > 0 && time.Since(start) < deadline {
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			next []string
			sem  = make(chan struct{}, 16)
		)
		for _, id := range pending {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				o := outcome{state: "unanswered"}
				j, code := getJob(api, id)
				switch code {
				case http.StatusNotFound:
					o.state = "lost"
				case http.StatusOK:
					o.state, o.job = j.Status, j
				}
				o.after = time.Since(start)
				mu.Lock()
				defer mu.Unlock()
				final[id] = o
				if o.state != "lost" && o.state != "succeeded" && o.state != "failed" {
					next = append(next, id)
				}
			})
		}
		wg.Wait()
		pending = next
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return final
}

func count(m map[string]outcome) map[string]int {
	c := map[string]int{}
	for _, o := range m {
		c[o.state]++
	}
	return c
}

// pct returns the p-th percentile (0..100) of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// generateCalls counts the upstream's generateContent calls (not probes).
func generateCalls(calls []geminifake.Call) []geminifake.Call {
	var out []geminifake.Call
	for _, c := range calls {
		if c.Method == http.MethodPost && strings.HasSuffix(c.Path, ":generateContent") {
			out = append(out, c)
		}
	}
	return out
}

// logLines returns the lines of s containing sub.
func logLines(s, sub string) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader([]byte(s)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), sub) {
			out = append(out, sc.Text())
		}
	}
	return out
}
