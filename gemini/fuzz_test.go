package gemini

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
)

// fuzzKey is the key every fuzzed call carries; its characters are chosen
// so that an echo of it, or of a piece of it, is easy to spot.
const fuzzKey = "AIzaSyFUZZ-EXAMPLE-0123456789-abcdefghijk"

// knownClasses is every Class the client may return.
var knownClasses = map[Class]bool{
	ClassUnavailable: true, ClassInternal: true, ClassTimeout: true, ClassNetwork: true,
	ClassRateLimited: true, ClassKeyInvalid: true, ClassUnauthenticated: true,
	ClassPermissionDenied: true, ClassBadRequest: true, ClassNotFound: true,
	ClassLocation: true, ClassBlocked: true, ClassMaxTokens: true, ClassUnusable: true,
	ClassBilling: true, ClassCanceled: true, ClassShed: true,
}

// cannedTransport answers every request with one status and body, in
// memory: no sockets, so that an iteration costs microseconds.
type cannedTransport struct {
	status int
	body   []byte
}

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
	return &http.Response{
		StatusCode:    c.status,
		Status:        http.StatusText(c.status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(c.body)),
		ContentLength: int64(len(c.body)),
		Request:       r,
	}, nil
}

// FuzzClassify sends arbitrary (status, body) answers through Generate and
// Probe: the client never panics, every failure is an *Error of a known
// class that shows no piece of the key, and a 2xx body either gives a
// Response with text or is blocked, max_tokens or unusable.
func FuzzClassify(f *testing.F) {
	for _, name := range geminifake.FixtureNames() {
		r := geminifake.FixtureReply(name)
		f.Add(uint16(r.Status), r.Body, false)
	}
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, `{"candidates":[{"content":{"parts":[{"text":"{\"a\":1}"}]},"finishReason":"STOP"}]}`},
		{200, `{"candidates":[{"content":{"parts":[{"te`},
		{200, `<html><body>Bad gateway</body></html>`},
		{200, ``},
		{200, `null`},
		{200, `{"candidates":[{"finishReason":"RECITATION"}]}`},
		{200, `{"candidates":[{"content":{"parts":[{"text":"x","thought":true}]}}]}`},
		{204, ``},
		{502, `<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>`},
		{503, `{"error":{"code":503,"mess`},
		{400, `{"error":{"code":400,"message":"API key not valid. api_key:` + fuzzKey + `","status":"INVALID_ARGUMENT"}}`},
		{400, `{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"` + fuzzKey + `"}]}}`},
		{403, `<p>key ` + fuzzKey + ` was reported as leaked</p>`},
		{429, `{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"-5s"},{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]}]}}`},
		{429, `{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"9999999999999h"}]}}`},
		{599, `[`},
		{100, ``},
		{999, `{"error":null}`},
	} {
		f.Add(uint16(s.status), []byte(s.body), true)
	}
	f.Fuzz(func(t *testing.T, status uint16, body []byte, schema bool) {
		// Any three-digit status a server could send (a 3xx comes
		// without Location, so the client does not follow it).
		code := int(status)
		if code < 100 || code > 999 {
			code = 100 + code%900
		}
		c, err := New(Options{BaseURL: "http://gemini.invalid", Model: "gemini-2.5-flash", Timeout: time.Second,
			HTTPClient: &http.Client{Transport: cannedTransport{status: code, body: body}}})
		if err != nil {
			t.Fatal(err)
		}
		req := &Request{Text: []string{"hi"}}
		if schema {
			req.ResponseSchema = []byte(`{"type":"object"}`)
		}
		resp, err := c.Generate(context.Background(), fuzzKey, req)
		if code/100 == 2 && err == nil {
			if resp == nil || resp.Text == "" || resp.FinishReason == "" {
				t.Fatalf("%d: success without text: %+v", code, resp)
			}
		} else {
			if resp != nil {
				t.Fatalf("%d: both a response and an error %v", code, err)
			}
			e := checkFuzzError(t, code, body, err)
			if code/100 == 2 && e.Class != ClassUnusable && e.Class != ClassBlocked && e.Class != ClassMaxTokens {
				t.Fatalf("%d: class %q for a 2xx, want unusable, blocked or max_tokens (%v)", code, e.Class, err)
			}
			if code/100 != 2 && e.HTTPStatus != code {
				t.Fatalf("%d: HTTPStatus %d", code, e.HTTPStatus)
			}
			if code >= 500 && (e.KeyFault() || !e.Retryable()) {
				t.Fatalf("%d: a 5xx must be retryable and not the key's fault: %v", code, err)
			}
		}
		if err := c.Probe(context.Background(), fuzzKey); code == http.StatusOK {
			if err != nil {
				t.Fatalf("probe: 200 gave %v", err)
			}
		} else {
			checkFuzzError(t, code, body, err)
		}
	})
}

// checkFuzzError checks that err is an *Error of a known class whose text
// holds no piece of fuzzKey that the body did not already hold outside a
// whole copy of the key.
func checkFuzzError(t *testing.T, code int, body []byte, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%d: err = %T %v, want *Error", code, err, err)
	}
	if !knownClasses[e.Class] {
		t.Fatalf("%d: unknown class %q", code, e.Class)
	}
	// Pieces the body holds anyway (not as part of the whole key) are
	// the server's words, not a leak of the key.
	rest := strings.ReplaceAll(strings.ToValidUTF8(string(body), ""), fuzzKey, "")
	for _, s := range []string{e.Error(), e.Message, e.Status, e.Reason, e.QuotaID, e.QuotaValue} {
		if strings.Contains(s, fuzzKey) {
			t.Fatalf("%d: error text %q holds the key", code, s)
		}
		if !strings.Contains(string(body), fuzzKey) {
			continue
		}
		for i := 0; i+12 <= len(fuzzKey); i++ {
			if p := fuzzKey[i : i+12]; strings.Contains(s, p) && !strings.Contains(rest, p) {
				t.Fatalf("%d: error text %q holds %q, a piece of the key the body echoed", code, s, p)
			}
		}
	}
	return e
}
