package api

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyq/keyq/internal/testutil"
)

// The limit listener holds at most its capacity of connections open: the
// next Accept waits for a Close, and Close of the listener ends the wait.
func TestLimitListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	t.Cleanup(func() { _ = l.Close() })
	for range 4 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	third := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.Close()
		}
		third <- err
	}()
	testutil.Eventually(t, 5*time.Second, "a third Accept waits for a slot", func() bool { return l.waiting.Load() == 1 })
	if len(third) != 0 {
		t.Fatal("a third connection was accepted with two open and a limit of two")
	}
	_ = a.Close()
	_ = a.Close() // a second Close gives back nothing more
	if err := <-third; err != nil {
		t.Fatalf("Accept after a Close: %v", err)
	}
	if n := len(l.sem); n != 1 {
		t.Errorf("%d slots taken, want 1", n)
	}

	// Close ends an Accept that waits for a slot.
	if _, err := l.Accept(); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() { _, err := l.Accept(); waiting <- err }()
	testutil.Eventually(t, 5*time.Second, "Accept waits for a slot", func() bool { return l.waiting.Load() == 1 })
	_ = l.Close()
	if err := <-waiting; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// With MaxConns N, N+K clients at once are served N at a time: the others
// wait unaccepted and are served as the first ones finish. And clients
// holding idle keep-alive connections do not keep a new one waiting.
func TestServeLimitsConnections(t *testing.T) {
	t.Parallel()
	const n, k = 3, 2
	var inflight, most, served atomic.Int32
	release := make(chan struct{})
	s := &Server{log: slog.New(slog.DiscardHandler), handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := inflight.Add(1)
		for m := most.Load(); cur > m && !most.CompareAndSwap(m, cur); m = most.Load() {
		}
		if r.URL.Path == "/block" {
			<-release
		}
		inflight.Add(-1)
		served.Add(1)
		_, _ = io.WriteString(w, "ok")
	})}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	// get sends GET path on a new connection, keeping it open after the
	// answer; the answer's status line and body arrive on the channel.
	get := func(path string) (net.Conn, <-chan string) {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: keyq\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		out := make(chan string, 1)
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				out <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			out <- resp.Status + " " + string(b)
		}()
		return c, out
	}

	var (
		answers []<-chan string
		conns   []net.Conn
	)
	for range n + k {
		c, out := get("/block")
		answers = append(answers, out)
		conns = append(conns, c)
	}
	testutil.Eventually(t, 10*time.Second, "N requests in flight", func() bool { return inflight.Load() == n })
	testutil.Eventually(t, 10*time.Second, "the others wait for a slot", func() bool { return l.waiting.Load() == 1 })
	if got := inflight.Load(); got != n {
		t.Fatalf("%d requests in flight with MaxConns %d", got, n)
	}
	close(release)
	for i, out := range answers {
		if a := <-out; a != "200 OK ok" {
			t.Errorf("answer %q", a)
		}
		_ = conns[i].Close()
	}
	if m := most.Load(); m != n {
		t.Errorf("at most %d requests were in flight at once, want %d", m, n)
	}

	// N clients keep idle keep-alive connections; a new client is
	// served all the same: the full listener closes idle connections.
	// (The Accept waiting for the next connection holds one slot.)
	testutil.Eventually(t, 10*time.Second, "the blocked clients' connections close", func() bool { return len(l.sem) <= 1 })
	for range n {
		_, out := get("/idle")
		if a := <-out; !strings.HasPrefix(a, "200") {
			t.Fatalf("answer %q", a)
		}
	}
	_, out := get("/new")
	select {
	case a := <-out:
		if a != "200 OK ok" {
			t.Errorf("answer %q", a)
		}
	case <-time.After(20 * time.Second): // far below IdleTimeout (2m)
		t.Fatal("a new client waited behind idle keep-alive connections")
	}
}
