package gemini

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// misbehaveKey is the key sent to the misbehaving upstream; its pages echo it.
const misbehaveKey = "AIzaSyMISBEHAVE-EXAMPLE-0123456789-abcde"

// rawUpstream is an upstream at the TCP level: it reads each HTTP request
// and answers with whatever bytes act writes, including none. Close shuts
// the listener and every connection and waits for its goroutines.
type rawUpstream struct {
	ln    net.Listener
	act   func(c net.Conn, r *http.Request)
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startRawUpstream(t *testing.T, act func(c net.Conn, r *http.Request)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, act: act, conns: map[net.Conn]bool{}}
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
	return u
}

// serve reads requests off c and acts on each, until act closes c or the
// client goes away.
func (u *rawUpstream) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		u.act(c, r)
	}
}

func (u *rawUpstream) URL() string { return "http://" + u.ln.Addr().String() }

func (u *rawUpstream) Close() {
	_ = u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// writeRaw writes a whole HTTP/1.1 answer: status line, headers, body.
func writeRaw(c net.Conn, status string, headers map[string]string, body string) {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %s\r\n", status)
	for k, v := range headers {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	_, _ = io.WriteString(c, b.String())
}

// htmlPage is a proxy's error page that echoes the request's key, as a
// misconfigured gateway might.
func htmlPage(title string) string {
	return "<!DOCTYPE html>\n<html><head><title>" + title + "</title></head><body>\n" +
		"<h1>" + title + "</h1><p>upstream request ?key=" + misbehaveKey + " failed; key " + misbehaveKey + "</p>\n" +
		"<hr><center>nginx</center></body></html>\n"
}

// misbehaviours are the ways an upstream answers badly, and how the client
// must classify each.
var misbehaviours = []struct {
	name    string
	act     func(c net.Conn, r *http.Request)
	class   Class
	status  int    // HTTPStatus of the error
	is      error  // errors.Is(err, is) when non-nil
	slow    bool   // the call ends only at the client's timeout
	message string // the error text holds this
}{
	{
		name: "html 502", class: ClassUnavailable, status: 502, message: "502 Bad Gateway",
		act: func(c net.Conn, _ *http.Request) {
			page := htmlPage("502 Bad Gateway")
			writeRaw(c, "502 Bad Gateway", map[string]string{"Content-Type": "text/html", "Content-Length": fmt.Sprint(len(page))}, page)
		},
	},
	{
		name: "html 503", class: ClassUnavailable, status: 503, message: "Service Temporarily Unavailable",
		act: func(c net.Conn, _ *http.Request) {
			page := htmlPage("503 Service Temporarily Unavailable")
			writeRaw(c, "503 Service Unavailable", map[string]string{"Content-Type": "text/html", "Content-Length": fmt.Sprint(len(page)), "Connection": "close"}, page)
			c.Close()
		},
	},
	{
		name: "truncated json 200", class: ClassNetwork, is: io.ErrUnexpectedEOF,
		act: func(c net.Conn, _ *http.Request) {
			writeRaw(c, "200 OK", map[string]string{"Content-Type": "application/json", "Content-Length": "4096"},
				`{"candidates":[{"content":{"parts":[{"text":"{\"summary\":\"A stubb`)
			c.Close()
		},
	},
	{
		name: "non-json 200", class: ClassUnusable, status: 200, message: "not a generateContent response",
		act: func(c net.Conn, _ *http.Request) {
			body := "Service is up. Have a nice day.\n"
			writeRaw(c, "200 OK", map[string]string{"Content-Type": "text/plain", "Content-Length": fmt.Sprint(len(body))}, body)
		},
	},
	{
		name: "headers then silence", class: ClassTimeout, is: context.DeadlineExceeded, slow: true,
		act: func(c net.Conn, _ *http.Request) {
			writeRaw(c, "200 OK", map[string]string{"Content-Type": "application/json", "Content-Length": "300"}, `{"candidates":`)
			_, _ = io.Copy(io.Discard, c) // until the client hangs up
		},
	},
	{
		name: "silence before headers", class: ClassTimeout, is: context.DeadlineExceeded, slow: true,
		act: func(c net.Conn, _ *http.Request) {
			_, _ = io.Copy(io.Discard, c)
		},
	},
	{
		name: "reset mid-response", class: ClassNetwork,
		act: func(c net.Conn, _ *http.Request) {
			writeRaw(c, "200 OK", map[string]string{"Content-Type": "application/json", "Content-Length": "4096"}, `{"candidates":[{"content":`)
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close() // RST, not FIN
		},
	},
	{
		name: "close without answer", class: ClassNetwork,
		act: func(c net.Conn, _ *http.Request) {
			c.Close()
		},
	},
}

// TestUpstreamMisbehaving checks, for each misbehaviour, the class, whether
// another attempt may help, that no error shows the key, that a hung
// upstream costs no more than the timeout, and that no goroutine is left.
func TestUpstreamMisbehaving(t *testing.T) {
	const timeout = 400 * time.Millisecond
	for _, mb := range misbehaviours {
		t.Run(mb.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			up := startRawUpstream(t, mb.act)
			defer up.Close()
			// The client as keyq builds it: the default http.Client, whose
			// idle connections live in http.DefaultTransport.
			c, err := New(Options{BaseURL: up.URL(), Model: testModel, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer http.DefaultTransport.(*http.Transport).CloseIdleConnections()

			for _, call := range []struct {
				name string
				do   func(ctx context.Context) error
			}{
				{"generate", func(ctx context.Context) error {
					_, err := c.Generate(ctx, misbehaveKey, &Request{Text: []string{"Summarise Sherlock Holmes."}})
					return err
				}},
				{"probe", func(ctx context.Context) error { return c.Probe(ctx, misbehaveKey) }},
			} {
				// Twice: a connection a misbehaviour left behind must not
				// spoil the next call.
				for round := range 2 {
					start := time.Now()
					err := call.do(t.Context())
					took := time.Since(start)
					if mb.class == ClassUnusable && call.name == "probe" {
						// A probe asks only for a 200; it does not read the body.
						if err != nil {
							t.Errorf("probe of a 200: %v", err)
						}
						continue
					}
					var e *Error
					if !errors.As(err, &e) {
						t.Fatalf("%s #%d: err = %T %v, want *Error", call.name, round+1, err, err)
					}
					if strings.Contains(err.Error(), misbehaveKey) || strings.Contains(e.Message, misbehaveKey) {
						t.Fatalf("%s: error shows the key: %v", call.name, err)
					}
					for i := 0; i+12 <= len(misbehaveKey); i++ {
						if p := misbehaveKey[i : i+12]; strings.Contains(err.Error(), p) {
							t.Fatalf("%s: error shows %q, a piece of the key: %v", call.name, p, err)
						}
					}
					if e.Class != mb.class || !e.Retryable() || e.KeyFault() {
						t.Errorf("%s #%d: class %q retryable %v keyFault %v (%v), want %q, retryable, not the key's fault",
							call.name, round+1, e.Class, e.Retryable(), e.KeyFault(), err, mb.class)
					}
					if mb.status != 0 && e.HTTPStatus != mb.status {
						t.Errorf("%s: HTTPStatus %d, want %d", call.name, e.HTTPStatus, mb.status)
					}
					if mb.is != nil && !errors.Is(err, mb.is) {
						t.Errorf("%s: errors.Is(%v, %v) = false", call.name, err, mb.is)
					}
					if mb.message != "" && !strings.Contains(err.Error(), mb.message) {
						t.Errorf("%s: error %q lacks %q", call.name, err, mb.message)
					}
					if limit := timeout + time.Second; took > limit || (!mb.slow && took > timeout) {
						t.Errorf("%s: took %v (timeout %v)", call.name, took, timeout)
					}
				}
			}
		})
	}
}
