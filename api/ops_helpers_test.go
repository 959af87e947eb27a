package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
)

// opsServer is a Server on its own Redis database, closed with the test,
// and the log it writes.
func opsServer(t *testing.T, opts Options) (*Server, *redis.Client, *testutil.Logs) {
	t.Helper()
	rdb, _ := redistest.Open(t)
	logs := &testutil.Logs{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	s, err := New(rdb, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, rdb, logs
}

func mustRedis(t *testing.T) *redis.Client {
	t.Helper()
	rdb, _ := redistest.Open(t)
	return rdb
}

// opsDo sends one request through the server's whole handler chain.
func opsDo(t *testing.T, s *Server, method, path string, header map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

// opsError checks an answer is the JSON error of status and code.
func opsError(t *testing.T, what string, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	var e struct {
		Error *Error `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil {
		t.Errorf("%s: body %q is not a JSON error: %v", what, w.Body.String(), err)
		return
	}
	if w.Code != status || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: %d %s, want %d %s", what, w.Code, w.Body.String(), status, code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
}

const jobBody = `{"name":"Ada Lovelace"}`

var jsonCT = map[string]string{"Content-Type": "application/json"}

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
