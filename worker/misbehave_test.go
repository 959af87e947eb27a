package worker_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/worker"
)

// mbAct is one way for the upstream to answer a request badly, at the
// TCP level.
type mbAct func(c net.Conn)

func mbWrite(c net.Conn, status string, headers map[string]string, body string) {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %s\r\n", status)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n" + body)
	_, _ = io.WriteString(c, b.String())
}

func mbPage(title, key string) string {
	return "<html><head><title>" + title + "</title></head><body><h1>" + title +
		"</h1><p>request ?key=" + key + " failed</p></body></html>"
}

// mbCases are the misbehaviours, and the class a job fails with when every
// attempt meets one.
var mbCases = []struct {
	name  string
	class string
	act   func(key string) mbAct
}{
	{"html502", "unavailable", func(key string) mbAct {
		return func(c net.Conn) {
			p := mbPage("502 Bad Gateway", key)
			mbWrite(c, "502 Bad Gateway", map[string]string{"Content-Type": "text/html", "Content-Length": fmt.Sprint(len(p))}, p)
		}
	}},
	{"html503", "unavailable", func(key string) mbAct {
		return func(c net.Conn) {
			p := mbPage("503 Service Unavailable", key)
			mbWrite(c, "503 Service Unavailable", map[string]string{"Content-Type": "text/html", "Content-Length": fmt.Sprint(len(p)), "Connection": "close"}, p)
			c.Close()
		}
	}},
	{"truncated", "network", func(string) mbAct {
		return func(c net.Conn) {
			mbWrite(c, "200 OK", map[string]string{"Content-Type": "application/json", "Content-Length": "4096"}, `{"candidates":[{"content":{"parts":[{"te`)
			c.Close()
		}
	}},
	{"nonjson", "unusable", func(string) mbAct {
		return func(c net.Conn) {
			mbWrite(c, "200 OK", map[string]string{"Content-Type": "text/plain", "Content-Length": "3"}, "ok\n")
		}
	}},
	{"silence", "timeout", func(string) mbAct {
		return func(c net.Conn) {
			mbWrite(c, "200 OK", map[string]string{"Content-Type": "application/json", "Content-Length": "300"}, "")
			_, _ = io.Copy(io.Discard, c) // until the client gives up
		}
	}},
	{"reset", "network", func(string) mbAct {
		return func(c net.Conn) {
			mbWrite(c, "200 OK", map[string]string{"Content-Type": "application/json", "Content-Length": "4096"}, `{"candidates":[`)
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}},
	{"close", "network", func(string) mbAct {
		return func(c net.Conn) { c.Close() }
	}},
}

// mbUpstream answers each generateContent call after the marker the job's
// name puts in the prompt: "mb-<case>-first" misbehaves on the job's first
// call only, "mb-<case>-all" on every call; the rest get a good answer.
type mbUpstream struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	calls map[string][]string // marker -> keys, in call order
}

var mbMarker = regexp.MustCompile(`mb-([a-z0-9]+)-(first|all)`)

func mbStart(t *testing.T) *mbUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &mbUpstream{ln: ln, conns: map[net.Conn]bool{}, calls: map[string][]string{}}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns[c] = true
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer func() {
					u.mu.Lock()
					delete(u.conns, c)
					u.mu.Unlock()
					c.Close()
				}()
				u.serve(c)
			}()
		}
	}()
	t.Cleanup(u.close)
	return u
}

func (u *mbUpstream) serve(c net.Conn) {
	br := bufio.NewReader(c)
	ok := string(geminifake.Fixture("200_ok_json"))
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(r.Body)
		key := r.Header.Get("x-goog-api-key")
		m := mbMarker.FindSubmatch(body)
		if m == nil {
			mbWrite(c, "200 OK", map[string]string{"Content-Type": "application/json", "Content-Length": fmt.Sprint(len(ok))}, ok)
			continue
		}
		marker := string(m[0])
		u.mu.Lock()
		u.calls[marker] = append(u.calls[marker], key)
		n := len(u.calls[marker])
		u.mu.Unlock()
		if string(m[2]) == "first" && n > 1 {
			mbWrite(c, "200 OK", map[string]string{"Content-Type": "application/json", "Content-Length": fmt.Sprint(len(ok))}, ok)
			continue
		}
		for _, mc := range mbCases {
			if mc.name == string(m[1]) {
				mc.act(key)(c)
			}
		}
	}
}

func (u *mbUpstream) keys(marker string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.calls[marker]...)
}

func (u *mbUpstream) close() {
	_ = u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// TestUpstreamMisbehavingJobs runs jobs through a real worker on a real Redis
// against an upstream that misbehaves: met on a job's first call, the job
// goes on with another key and succeeds; met on every call, it fails with
// the misbehaviour's class; never does a job hang past its timeouts, and no
// key shows in logs, job errors, results or Redis.
func TestUpstreamMisbehavingJobs(t *testing.T) {
	const callTimeout = 300 * time.Millisecond
	rdb, _ := redistest.Open(t)
	up := mbStart(t)
	logs := &testutil.Logs{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	keys, _, err := keyring.ParseKeys(strings.Join(secrets, ","))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.New(rdb, keys, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Announce(t.Context()); err != nil {
		t.Fatal(err)
	}
	gem, err := gemini.New(gemini.Options{BaseURL: "http://" + up.ln.Addr().String(), Model: "gemini-2.5-flash", Timeout: callTimeout})
	if err != nil {
		t.Fatal(err)
	}
	retries := 2 // 3 attempts a run: each key once
	h, err := worker.NewHandler(gem, ring, worker.HandlerOptions{Retries: retries, RetryDelay: time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(rdb, h, worker.Options{Concurrency: 2 * len(mbCases), JobRetryDelay: 20 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, ProbeInterval: time.Hour, ShutdownTimeout: 5 * time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)

	client := asynq.NewClientFromRedisClient(rdb)
	inspect := asynq.NewInspectorFromRedisClient(rdb)
	enqueue := func(marker string) string {
		sum := sha256.Sum256([]byte(marker))
		id := hex.EncodeToString(sum[:16])
		task, err := tasks.NewAnalyzeCharacterTask(tasks.AnalyzeCharacter{Name: "Holmes " + marker}, asynq.TaskID(id),
			asynq.Queue(tasks.Queue), asynq.MaxRetry(tasks.AsynqMaxRetry(0)), asynq.Timeout(30*time.Second), asynq.Retention(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		return id
	}
	type job struct{ marker, id, class string }
	var jobs []job
	for _, mc := range mbCases {
		for _, policy := range []string{"first", "all"} {
			m := "mb-" + mc.name + "-" + policy
			jobs = append(jobs, job{marker: m, id: enqueue(m), class: mc.class})
		}
	}
	// The slowest job meets the silent upstream three times: 3 x 300ms.
	for _, j := range jobs {
		var info *asynq.TaskInfo
		testutil.Eventually(t, 15*time.Second, "job "+j.marker+" to finish", func() bool {
			info, err = inspect.GetTaskInfo(tasks.Queue, j.id)
			return err == nil && (info.State == asynq.TaskStateCompleted || info.State == asynq.TaskStateArchived)
		})
		called := up.keys(j.marker)
		if strings.HasSuffix(j.marker, "-first") {
			if info.State != asynq.TaskStateCompleted {
				t.Errorf("%s: %v (%s), want completed on another key", j.marker, info.State, info.LastErr)
				continue
			}
			r := result(t, info)
			if len(called) != 2 || called[0] == called[1] || r.Attempts != 2 || r.KeyFingerprint != keyring.Fingerprint(called[1]) {
				t.Errorf("%s: result %+v after %d calls; want attempt 2 on another key than the first", j.marker, r, len(called))
			}
			continue
		}
		je := tasks.ParseJobError(info.LastErr)
		if info.State != asynq.TaskStateArchived || string(je.Class) != j.class {
			t.Errorf("%s: %v, class %q (%s); want failed with class %q", j.marker, info.State, je.Class, info.LastErr, j.class)
		}
		want := 3 // every key once
		if j.class == "unusable" {
			want = 2 // one more attempt for an unusable answer, then fail
		}
		if len(called) != want {
			t.Errorf("%s: %d calls, want %d", j.marker, len(called), want)
		}
		if !strings.Contains(je.Message, j.class) {
			t.Errorf("%s: message %q does not name the class", j.marker, je.Message)
		}
	}
	for _, where := range []struct{ name, text string }{
		{"logs", logs.String()},
		{"redis", testutil.DumpRedis(t, rdb)},
	} {
		if hits := testutil.FindSecrets(where.text, secrets...); len(hits) > 0 {
			t.Errorf("keys found in %s: %v", where.name, hits)
		}
	}
}
