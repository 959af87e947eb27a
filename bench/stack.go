package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/worker"
)

const model = "gemini-2.5-flash"

// fake is geminifake's Upstream behind a Respond that enforces a per-project
// quota over a sliding minute (answering Google's real 429_per_minute body),
// fails a share of calls with 503_overloaded and draws a latency.
type fake struct {
	up      *geminifake.Upstream
	srv     *httptest.Server
	project map[string]string // key secret -> project
	quota   int               // calls per minute per project; 0 = none
	fail503 float64
	latency time.Duration // mean; drawn uniformly in [0.5, 1.5] x latency
	fixed   bool          // latency exactly, not drawn

	mu                    sync.Mutex
	window                map[string][]time.Time
	calls                 atomic.Int64
	ok                    atomic.Int64
	r429                  atomic.Int64
	r503                  atomic.Int64
	inFlight, maxInFlight atomic.Int64
	okTimes               []time.Time
}

func newFake(project map[string]string, quota int, fail503 float64, latency time.Duration) *fake {
	f := &fake{project: project, quota: quota, fail503: fail503, latency: latency, window: map[string][]time.Time{}}
	f.up = geminifake.New(geminifake.Options{Respond: f.respond})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.inFlight.Add(1)
		for {
			m := f.maxInFlight.Load()
			if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		defer f.inFlight.Add(-1)
		f.up.ServeHTTP(w, r)
	}))
	return f
}

var okReply = geminifake.FixtureReply("200_ok_json")
var r429 = geminifake.FixtureReply("429_per_minute")
var r503 = geminifake.FixtureReply("503_overloaded")

func (f *fake) respond(key string, _ []byte) geminifake.Reply {
	f.calls.Add(1)
	now := time.Now()
	if f.quota > 0 {
		p := f.project[key]
		f.mu.Lock()
		w := f.window[p]
		i := 0
		for i < len(w) && now.Sub(w[i]) >= time.Minute {
			i++
		}
		w = w[i:]
		if len(w) >= f.quota {
			f.window[p] = w
			f.mu.Unlock()
			f.r429.Add(1)
			return r429
		}
		f.window[p] = append(w, now)
		f.mu.Unlock()
	}
	var rep geminifake.Reply
	if f.fail503 > 0 && rand.Float64() < f.fail503 {
		f.r503.Add(1)
		rep = r503
	} else {
		f.ok.Add(1)
		f.mu.Lock()
		f.okTimes = append(f.okTimes, now)
		f.mu.Unlock()
		rep = okReply
	}
	if f.latency > 0 {
		rep.Delay = f.latency
		if !f.fixed {
			rep.Delay = time.Duration(float64(f.latency) * (0.5 + rand.Float64()))
		}
	}
	return rep
}

func (f *fake) okBetween(a, b time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.okTimes {
		if !t.Before(a) && t.Before(b) {
			n++
		}
	}
	return n
}

func (f *fake) close() {
	f.srv.CloseClientConnections()
	f.srv.Close()
}

// keyList makes n keys labelled with projects p1.. (one key each) or
// the given labels, and the secret->project map the fake enforces.
func keyList(labels []string) (string, map[string]string) {
	var parts []string
	m := map[string]string{}
	for i, l := range labels {
		secret := fmt.Sprintf("AIzaBench%02dKey%s", i+1, strings.Repeat("x", 20))
		parts = append(parts, l+":"+secret)
		m[secret] = l
	}
	return strings.Join(parts, ","), m
}

func projects(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, string(rune('a'+i)))
	}
	return out
}

type workerCfg struct {
	keys        string
	pool        string
	rpm         int
	concurrency int
	retries     int // GEMINI_RETRIES
	retryDelay  time.Duration
	jobDelay    time.Duration
	timeout     time.Duration
	pooledHTTP  bool // Gemini client with MaxIdleConnsPerHost 256 instead of cmd/keyq's default http.Client
}

type stack struct {
	rdbs    []*redis.Client
	workers []*worker.Worker
	rings   []*keyring.Ring
}

// startWorkers starts n worker.Worker instances, each on its own Redis
// client, ring and Gemini client, as n processes would.
func startWorkers(env *benchEnv, baseURL string, n int, c workerCfg) (*stack, error) {
	st := &stack{}
	keys, _, err := keyring.ParseKeys(c.keys)
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		rdb := env.newRDB()
		st.rdbs = append(st.rdbs, rdb)
		ring, err := keyring.New(rdb, keys, keyring.Options{Pool: c.pool, RPM: c.rpm})
		if err != nil {
			st.stop()
			return nil, err
		}
		st.rings = append(st.rings, ring)
		var hc *http.Client
		if c.pooledHTTP {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.MaxIdleConnsPerHost, tr.MaxIdleConns = 256, 256
			hc = &http.Client{Transport: tr}
		}
		gem, err := gemini.New(gemini.Options{BaseURL: baseURL, Model: model, Timeout: c.timeout, HTTPClient: hc})
		if err != nil {
			st.stop()
			return nil, err
		}
		h, err := worker.NewHandler(gem, ring, worker.HandlerOptions{Retries: c.retries, RetryDelay: c.retryDelay, Logger: quiet})
		if err != nil {
			st.stop()
			return nil, err
		}
		w, err := worker.New(rdb, h, worker.Options{Concurrency: c.concurrency, JobRetryDelay: c.jobDelay,
			ShutdownTimeout: time.Second, PollInterval: 200 * time.Millisecond, Logger: quiet})
		if err != nil {
			st.stop()
			return nil, err
		}
		if err := w.Start(); err != nil {
			st.stop()
			return nil, err
		}
		st.workers = append(st.workers, w)
	}
	return st, nil
}

func (s *stack) stop() {
	var wg sync.WaitGroup
	for _, w := range s.workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.Shutdown() }()
	}
	wg.Wait()
	for _, r := range s.rdbs {
		r.Close()
	}
}

// apiServer serves api.Handler on a real local listener.
type apiServer struct {
	rdb *redis.Client
	s   *api.Server
	srv *httptest.Server
	hc  *http.Client
}

func startAPI(env *benchEnv, jobMaxRetry int) (*apiServer, error) {
	rdb := env.newRDB()
	if jobMaxRetry == 0 {
		jobMaxRetry = api.NoJobRetries
	}
	s, err := api.New(rdb, api.Options{JobMaxRetry: jobMaxRetry, Logger: quiet})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	srv := httptest.NewServer(s.Handler())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	tr.MaxIdleConns = 256
	return &apiServer{rdb: rdb, s: s, srv: srv, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

func (a *apiServer) close() {
	a.srv.CloseClientConnections()
	a.srv.Close()
	a.s.Close()
	a.rdb.Close()
}

var jobBody = []byte(`{"name":"Sherlock Holmes","description":"A consulting detective in London.","language":"en"}`)

func (a *apiServer) post(ctx context.Context) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", a.srv.URL+"/api/analyze-character", bytes.NewReader(jobBody))
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST: %d %s", resp.StatusCode, b)
	}
	var acc api.JobAccepted
	if err := json.Unmarshal(b, &acc); err != nil {
		return "", err
	}
	return acc.ID, nil
}

func (a *apiServer) get(ctx context.Context, id string) (*api.Job, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", a.srv.URL+"/api/jobs/"+id, nil)
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET: %d %s", resp.StatusCode, b)
	}
	var j api.Job
	return &j, json.Unmarshal(b, &j)
}

// durs helps with percentiles.
type durs []time.Duration

func (d durs) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append(durs(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n * 1024
		}
	}
	return -1
}
