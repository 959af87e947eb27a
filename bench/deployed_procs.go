package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
)

// The deployed part's child processes: keyq's own binary and the bench
// re-executed as raw asynq's worker. Each is measured from /proc, so
// nothing in them needs to know it is being measured.

const rawQueue = "rawbench"

// rawResult is what the raw worker stores per task: about the size of the
// result keyq's worker stores for the fake's answer (517 bytes, read with
// HSTRLEN on a run), so Redis stores as many bytes for either.
var rawResult = []byte(`{"summary":"` + strings.Repeat("x", 496) + `","ok":1}`)

// runRole runs a child role of the bench and exits.
func runRole(role string, args []string) {
	switch role {
	case "rawworker":
		rawWorkerMain(args)
	case "rawapi":
		rawAPIMain(args)
	default:
		log.Fatalf("unknown -role %q", role)
	}
}

// rawWorkerMain is raw asynq's worker as a deployment would write it:
// asynq.NewServer with its defaults, save Concurrency and the idle poll
// interval, which is set to keyq's default (100 ms; asynq's is 1 s) so
// neither side waits longer for new work.
func rawWorkerMain(args []string) {
	fs := flag.NewFlagSet("rawworker", flag.ExitOnError)
	url := fs.String("redis", "", "Redis URL")
	conc := fs.Int("concurrency", 50, "asynq Concurrency")
	upstream := fs.String("upstream", "", "with a base URL: each task first calls generateContent there (keyq fake), as keyq's worker does")
	fs.Parse(args)
	opt, err := asynq.ParseRedisURI(*url)
	if err != nil {
		log.Fatal(err)
	}
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: *conc, Queues: map[string]int{rawQueue: 1},
		TaskCheckInterval: 100 * time.Millisecond})
	mux := asynq.NewServeMux()
	call := upstreamCall(*upstream, *conc)
	mux.HandleFunc("raw", func(ctx context.Context, t *asynq.Task) error {
		if err := call(ctx); err != nil {
			return err
		}
		_, err := t.ResultWriter().Write(rawResult)
		return err
	})
	// Run returns on SIGTERM after a graceful shutdown.
	if err := srv.Run(mux); err != nil {
		log.Fatal(err)
	}
}

// upstreamCall is one generateContent call to base, with connections kept
// for every task in flight as keyq's worker keeps them; a no-op without
// base.
func upstreamCall(base string, conc int) func(context.Context) error {
	if base == "" {
		return func(context.Context) error { return nil }
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc
	hc := &http.Client{Transport: tr}
	url := base + "/v1beta/models/gemini-2.5-flash:generateContent"
	body := []byte(`{"contents":[{"role":"user","parts":[{"text":"Analyze the character Sherlock."}]}]}`)
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-goog-api-key", "AIzaSyBENCHBENCHBENCHBENCHBENCHBENCH12")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("upstream: %d", resp.StatusCode)
		}
		return nil
	}
}

// rawAPIMain is the least an HTTP job API over asynq does: decode a JSON
// job, enqueue it (TaskID, Retention 24h, MaxRetry 4) and answer 202 with
// its id. With rawworker -upstream it is the floor of any HTTP job API in
// front of asynq calling an HTTP upstream: keyq's HTTP costs without its
// keys, job states or usage.
func rawAPIMain(args []string) {
	fs := flag.NewFlagSet("rawapi", flag.ExitOnError)
	url := fs.String("redis", "", "Redis URL")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	fs.Parse(args)
	opt, err := asynq.ParseRedisURI(*url)
	if err != nil {
		log.Fatal(err)
	}
	cli := asynq.NewClient(opt)
	http.HandleFunc("POST /api/analyze-character", func(w http.ResponseWriter, r *http.Request) {
		var job struct {
			Name string `json:"name"`
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err == nil {
			err = json.Unmarshal(body, &job)
		}
		if err != nil || job.Name == "" {
			http.Error(w, `{"error":"bad job"}`, http.StatusBadRequest)
			return
		}
		id := uuid.NewString()
		if _, err := cli.EnqueueContext(r.Context(), asynq.NewTask("raw", body), asynq.Queue(rawQueue),
			asynq.TaskID(id), asynq.Retention(24*time.Hour), asynq.MaxRetry(4)); err != nil {
			http.Error(w, `{"error":"enqueue"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"id":%q,"status":"queued"}`, id)
	})
	srv := &http.Server{Addr: *addr}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// child is one process of a deployment; its stdout and stderr go to a
// file, as a deployment's logs go to a pipe or file.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func startChild(dir, name, bin string, args, env []string) (*child, error) {
	logPath := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, env
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	return c, nil
}

// stop sends SIGTERM and kills the process if it has not exited in 10 s.
func (c *child) stop() {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		log.Printf("deployed: %s (pid %d) ignored SIGTERM for 10 s; killing it", c.name, c.cmd.Process.Pid)
		c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// cpu is the process's user+system CPU so far, all threads, from fields
// 14 and 15 of /proc/<pid>/stat (clock ticks of 10 ms: CLK_TCK is 100 on
// Linux).
func (c *child) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) may hold spaces; the fields after it start at 3.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("%s: unexpected /proc stat %q", c.name, b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: unexpected /proc stat %q", c.name, b)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// logSize is how many bytes the process has logged so far.
func (c *child) logSize() int64 {
	st, err := os.Stat(c.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// selfCPU is the bench process's own CPU: the load generator's.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitReady polls ok every 50 ms for up to 30 s; it fails early when one
// of procs has exited (a bad configuration, a taken port).
func waitReady(what string, procs []*child, ok func() bool) error {
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, p := range procs {
			if p.exited() {
				b, _ := os.ReadFile(p.logPath)
				return fmt.Errorf("%s exited while waiting for %s: %s", p.name, what, b)
			}
		}
		if ok() {
			return nil
		}
	}
	return fmt.Errorf("%s not ready after 30 s", what)
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// workerUp: an asynq server serving queue q has registered in Redis.
func workerUp(insp *asynq.Inspector, q string) bool {
	srvs, err := insp.Servers()
	if err != nil {
		return false
	}
	for _, s := range srvs {
		if _, ok := s.Queues[q]; ok {
			return true
		}
	}
	return false
}
