package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
)

var (
	pngBytes  = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	jpegBytes = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00")
	jobIDRE   = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// logBuf is a log sink that the server's goroutines write and tests read.
type logBuf struct{ testutil.Logs }

// records parses the JSON log lines written so far.
func (b *logBuf) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

type env struct {
	rdb  *redis.Client
	srv  *api.Server
	http *httptest.Server
	logs *logBuf
}

func newEnv(t *testing.T, opts api.Options) *env {
	t.Helper()
	rdb, _ := redistest.Open(t)
	return newEnvOn(t, rdb, opts)
}

func newEnvOn(t *testing.T, rdb *redis.Client, opts api.Options) *env {
	t.Helper()
	logs := &logBuf{}
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	srv, err := api.New(rdb, opts)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{rdb: rdb, srv: srv, http: hs, logs: logs}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

type request struct {
	method      string
	path        string // may hold escapes, sent as is
	contentType string
	header      map[string]string
	body        io.Reader
}

func (e *env) do(t *testing.T, r request) response {
	t.Helper()
	return doURL(t, e.http.URL, r)
}

func doURL(t *testing.T, base string, r request) response {
	t.Helper()
	req, err := http.NewRequest(r.method, base+r.path, r.body)
	if err != nil {
		t.Fatalf("new request %s %s: %v", r.method, r.path, err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	c := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", r.method, r.path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) post(t *testing.T, body string, header map[string]string) response {
	t.Helper()
	return e.do(t, request{method: http.MethodPost, path: "/api/analyze-character",
		contentType: "application/json", header: header, body: strings.NewReader(body)})
}

func (e *env) get(t *testing.T, path string) response {
	t.Helper()
	return e.do(t, request{method: http.MethodGet, path: path})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodeStrict reads exactly one JSON value of v's shape from b.
func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("body %q: %v", truncate(b), err)
	}
	if dec.More() {
		t.Fatalf("body %q: data after the JSON value", truncate(b))
	}
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// checkError asserts an error answer: status, JSON content type, the one
// error shape, a message, and the code and field given.
func checkError(t *testing.T, r response, status int, code, field string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, truncate(r.body))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var eb errorBody
	decodeStrict(t, r.body, &eb)
	if eb.Error.Code != code {
		t.Errorf("error.code %q, want %q (message %q)", eb.Error.Code, code, eb.Error.Message)
	}
	if eb.Error.Message == "" {
		t.Errorf("error.message is empty")
	}
	if eb.Error.Field != field {
		t.Errorf("error.field %q, want %q (message %q)", eb.Error.Field, field, eb.Error.Message)
	}
}

func accepted(t *testing.T, r response, status int) api.JobAccepted {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, truncate(r.body))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var a api.JobAccepted
	decodeStrict(t, r.body, &a)
	if !jobIDRE.MatchString(a.ID) {
		t.Errorf("id %q is not 32 lowercase hex digits", a.ID)
	}
	if want := "/api/jobs/" + a.ID; a.StatusURL != want {
		t.Errorf("status_url %q, want %q", a.StatusURL, want)
	}
	if loc := r.header.Get("Location"); loc != a.StatusURL {
		t.Errorf("Location %q, want %q", loc, a.StatusURL)
	}
	return a
}

func (e *env) job(t *testing.T, id string) api.Job {
	t.Helper()
	r := e.get(t, "/api/jobs/"+id)
	if r.status != http.StatusOK {
		t.Fatalf("GET job %s: status %d, body %s", id, r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var j api.Job
	decodeStrict(t, r.body, &j)
	return j
}

func queueSize(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(tasks.Queue)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("queue info: %v", err)
	}
	return info.Size
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("after %s: %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// repeatReader yields one byte forever.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func oversize(prefix string, fill byte, suffix string) func() io.Reader {
	return func() io.Reader {
		return io.MultiReader(strings.NewReader(prefix),
			io.LimitReader(repeatReader(fill), 11<<20), strings.NewReader(suffix))
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	if _, err := api.New(nil, api.Options{}); err == nil {
		t.Error("New(nil) gave no error")
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	for _, o := range []api.Options{{JobMaxRetry: -2}, {JobTimeout: -time.Second}, {JobRetention: -time.Second}} {
		if _, err := api.New(rdb, o); err == nil {
			t.Errorf("New(%+v) gave no error", o)
		}
	}
}

func TestPostAnalyzeCharacter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	body := mustJSON(t, map[string]any{
		"name":        "  Sherlock Holmes \n",
		"description": "A consulting detective.",
		"image":       map[string]any{"mime_type": "image/png", "data": base64.StdEncoding.EncodeToString(pngBytes)},
	})
	a := accepted(t, e.post(t, body, nil), http.StatusAccepted)
	if a.Status != tasks.StatusQueued {
		t.Errorf("status %q, want queued", a.Status)
	}

	j := e.job(t, a.ID)
	// A job the API enqueued may fail its first run and JobMaxRetry more.
	want := api.Job{ID: a.ID, Type: tasks.TypeAnalyzeCharacter, Status: tasks.StatusQueued, Attempts: 0, MaxAttempts: api.DefaultJobMaxRetry + 1}
	if j.ID != want.ID || j.Type != want.Type || j.Status != want.Status || j.Attempts != want.Attempts ||
		j.MaxAttempts != want.MaxAttempts || j.Result != nil || j.Error != nil || j.CompletedAt != nil || j.NextAttemptAt != nil {
		t.Errorf("job %+v, want %+v", j, want)
	}

	info, err := asynq.NewInspectorFromRedisClient(e.rdb).GetTaskInfo(tasks.Queue, a.ID)
	if err != nil {
		t.Fatalf("task not in Redis: %v", err)
	}
	if info.Type != tasks.TypeAnalyzeCharacter || info.Queue != tasks.Queue || info.State != asynq.TaskStatePending ||
		info.MaxRetry != tasks.AsynqMaxRetry(api.DefaultJobMaxRetry) || info.Timeout != api.DefaultJobTimeout || info.Retention != api.DefaultJobRetention {
		t.Errorf("task info %+v", info)
	}
	p, err := tasks.ParseAnalyzeCharacter(info.Payload)
	if err != nil {
		t.Fatalf("payload %s: %v", info.Payload, err)
	}
	if p.Name != "Sherlock Holmes" || p.Language != "en" || p.Description != "A consulting detective." ||
		p.Image == nil || p.Image.MIMEType != "image/png" || !bytes.Equal(p.Image.Data, pngBytes) {
		t.Errorf("payload %+v", p)
	}

	// HEAD answers like GET, without a body.
	h := e.do(t, request{method: http.MethodHead, path: a.StatusURL})
	if h.status != http.StatusOK || len(h.body) != 0 {
		t.Errorf("HEAD: %d %q", h.status, h.body)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{JobMaxRetry: api.NoJobRetries, JobTimeout: time.Minute, JobRetention: time.Hour})
	a := accepted(t, e.post(t, `{"name":"Watson","language":"pt-BR"}`, nil), http.StatusAccepted)
	if j := e.job(t, a.ID); j.MaxAttempts != 1 {
		t.Errorf("max_attempts %d, want 1", j.MaxAttempts)
	}
	info, err := asynq.NewInspectorFromRedisClient(e.rdb).GetTaskInfo(tasks.Queue, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxRetry != tasks.AsynqMaxRetry(0) || info.Timeout != time.Minute || info.Retention != time.Hour {
		t.Errorf("task info: max retry %d (want %d), timeout %s, retention %s", info.MaxRetry, tasks.AsynqMaxRetry(0), info.Timeout, info.Retention)
	}
	if p, _ := tasks.ParseAnalyzeCharacter(info.Payload); p.Language != "pt-BR" {
		t.Errorf("language %q, want pt-BR", p.Language)
	}
}

// asynq keeps a task's timeout in whole seconds: a sub-second JobTimeout
// must not turn into a task with neither timeout nor deadline, which asynq's
// server refuses to run ("both timeout and deadline are not set") and leaves
// active for ever.
func TestSubSecondJobTimeout(t *testing.T) {
	t.Parallel()
	rdb, _ := redistest.Open(t)
	srv, err := api.New(rdb, api.Options{JobTimeout: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return // refusing it is fine
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	e := &env{rdb: rdb, srv: srv, http: hs}
	a := accepted(t, e.post(t, `{"name":"x"}`, nil), http.StatusAccepted)
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(tasks.Queue, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Timeout <= 0 && info.Deadline.IsZero() {
		t.Errorf("JobTimeout 500ms made a task with timeout %s and no deadline", info.Timeout)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	body := `{"name":"Moriarty"}`
	key := map[string]string{"Idempotency-Key": "order-42"}

	first := accepted(t, e.post(t, body, key), http.StatusAccepted)
	again := accepted(t, e.post(t, body, key), http.StatusOK)
	if again.ID != first.ID || again.Status != tasks.StatusQueued {
		t.Errorf("repeat gave %+v, want id %s queued", again, first.ID)
	}
	if n := queueSize(t, e.rdb); n != 1 {
		t.Errorf("%d tasks in the queue, want 1", n)
	}

	other := accepted(t, e.post(t, body, map[string]string{"Idempotency-Key": "order-43"}), http.StatusAccepted)
	if other.ID == first.ID {
		t.Errorf("different keys gave the same id %s", other.ID)
	}
	none1 := accepted(t, e.post(t, body, nil), http.StatusAccepted)
	none2 := accepted(t, e.post(t, body, nil), http.StatusAccepted)
	if none1.ID == none2.ID {
		t.Errorf("two posts without a key gave the same id %s", none1.ID)
	}

	t.Run("concurrent", func(t *testing.T) {
		const n = 8
		codes := make(chan int, n)
		ids := make(chan string, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/api/analyze-character", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", "race")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				var a api.JobAccepted
				_ = json.NewDecoder(resp.Body).Decode(&a)
				codes <- resp.StatusCode
				ids <- a.ID
			})
		}
		wg.Wait()
		close(codes)
		close(ids)
		count := map[int]int{}
		for c := range codes {
			count[c]++
		}
		if count[http.StatusAccepted] != 1 || count[http.StatusOK] != n-1 {
			t.Errorf("status counts %v, want one 202 and %d 200", count, n-1)
		}
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		if len(seen) != 1 {
			t.Errorf("ids %v, want one", seen)
		}
	})

	before := queueSize(t, e.rdb)
	for _, bad := range []string{strings.Repeat("k", 256), strings.Repeat("k", 300), "a\tb", "clé"} {
		r := e.post(t, body, map[string]string{"Idempotency-Key": bad})
		checkError(t, r, http.StatusBadRequest, api.CodeInvalidRequest, "Idempotency-Key")
	}
	accepted(t, e.post(t, body, map[string]string{"Idempotency-Key": strings.Repeat("k", 255)}), http.StatusAccepted)
	if n := queueSize(t, e.rdb); n != before+1 {
		t.Errorf("%d tasks in the queue, want %d", n, before+1)
	}
}

func TestHostileRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	const path = "/api/analyze-character"
	str := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	name := func(n string) func() io.Reader { return str(mustJSON(t, map[string]string{"name": n})) }
	image := func(mime, data string) func() io.Reader {
		return str(mustJSON(t, map[string]any{"name": "x", "image": map[string]string{"mime_type": mime, "data": data}}))
	}
	b64 := base64.StdEncoding.EncodeToString

	type tc struct {
		name        string
		method      string // default POST
		path        string // default /api/analyze-character
		contentType string // default application/json; "-" sends none
		body        func() io.Reader
		status      int
		code        string
		field       string
		allow       string
		message     string // checked when set
	}
	bad := func(n string, body func() io.Reader, status int, code, field string) tc {
		return tc{name: n, body: body, status: status, code: code, field: field}
	}
	const (
		inv  = api.CodeInvalidRequest
		s400 = http.StatusBadRequest
	)
	badUTF8 := func(n string, body func() io.Reader) tc {
		return tc{name: n, body: body, status: s400, code: inv, message: "the body is not valid UTF-8"}
	}
	cases := []tc{
		bad("malformed JSON", str(`{"name":`), s400, inv, ""),
		bad("unquoted key", str(`{name:"x"}`), s400, inv, ""),
		bad("JSON array", str(`[{"name":"x"}]`), s400, inv, ""),
		bad("JSON string", str(`"x"`), s400, inv, ""),
		bad("JSON null", str(`null`), s400, inv, "name"),
		bad("deeply nested", str(strings.Repeat("[", 100_000)), s400, inv, ""),
		bad("deeply nested in field", str(`{"name":"x","image":`+strings.Repeat(`{"a":`, 100_000)), s400, inv, ""),
		bad("name is a number", str(`{"name":5}`), s400, inv, "name"),
		bad("image is a string", str(`{"name":"x","image":"x"}`), s400, inv, "image"),
		bad("image.data is a number", str(`{"name":"x","image":{"mime_type":"image/png","data":5}}`), s400, inv, "image.data"),
		bad("unknown field", str(`{"name":"x","evil":true}`), s400, inv, "evil"),
		bad("trailing object", str(`{"name":"x"}{"name":"y"}`), s400, inv, ""),
		bad("trailing garbage", str(`{"name":"x"} garbage`), s400, inv, ""),
		bad("empty body", str(""), s400, inv, ""),
		bad("whitespace body", str(" \n\t "), s400, inv, ""),
		bad("raw control char in string", str("{\"name\":\"a\x01b\"}"), s400, inv, ""),
		bad("body over 10 MiB", oversize(`{"name":"`, 'a', `"}`), http.StatusRequestEntityTooLarge, api.CodeTooLarge, ""),
		bad("object then 11 MiB of spaces", oversize(`{"name":"x"}`, ' ', ""), http.StatusRequestEntityTooLarge, api.CodeTooLarge, ""),
		bad("bad base64", image("image/png", "!!!not base64"), s400, inv, "image.data"),
		bad("data: URL prefix", image("image/png", "data:image/png;base64,"+b64(pngBytes)), s400, inv, "image.data"),
		bad("URL-safe base64", image("image/png", strings.TrimRight(base64.URLEncoding.EncodeToString(append(pngBytes, 0xfb, 0xff)), "=")+"_-"), s400, inv, "image.data"),
		bad("gif", image("image/gif", b64([]byte("GIF89a...."))), s400, inv, "image.mime_type"),
		bad("no mime type", image("", b64(pngBytes)), s400, inv, "image.mime_type"),
		bad("png mime with jpeg bytes", image("image/png", b64(jpegBytes)), s400, inv, "image.data"),
		bad("empty image data", image("image/png", ""), s400, inv, "image.data"),
		bad("image over 7 MiB decoded", image("image/png", b64(append(pngBytes, make([]byte, tasks.MaxImageBytes)...))), s400, inv, "image.data"),
		bad("empty name", name(""), s400, inv, "name"),
		bad("blank name", name(" \t\n "), s400, inv, "name"),
		bad("201-char name", name(strings.Repeat("a", 201)), s400, inv, "name"),
		bad("201 multibyte chars", name(strings.Repeat("é", 201)), s400, inv, "name"),
		bad("10,000-char name", name(strings.Repeat("n", 10_000)), s400, inv, "name"),
		bad("NUL in name", name("a\x00b"), s400, inv, "name"),
		bad("BEL in name", name("a\ab"), s400, inv, "name"),
		bad("newline inside name", name("a\nb"), s400, inv, "name"),
		bad("C1 control in name", name("a\u0085b"), s400, inv, "name"),
		// encoding/json turns invalid UTF-8 into U+FFFD; the API must not
		// take a body it silently rewrote, so invalid UTF-8 anywhere in the
		// body is refused before decoding, with no field.
		badUTF8("invalid UTF-8 in name", str("{\"name\":\"a\xff\xfeb\"}")),
		badUTF8("invalid UTF-8 in description", str("{\"name\":\"x\",\"description\":\"d\xc3\"}")),
		badUTF8("invalid UTF-8 in a field name", str("{\"name\":\"x\",\"ev\xffil\":true}")),
		badUTF8("invalid UTF-8 outside strings", str("{\"name\":\"x\"\xff}")),
		badUTF8("invalid UTF-8 after the object", str("{\"name\":\"x\"}\xfe")),
		badUTF8("encoded surrogate half", str("{\"name\":\"a\xed\xa0\x80b\"}")),
		badUTF8("overlong encoding", str("{\"name\":\"a\xc0\xafb\"}")),
		bad("description over 20,000 chars", str(mustJSON(t, map[string]string{"name": "x", "description": strings.Repeat("d", 20_001)})), s400, inv, "description"),
		bad("bad language", str(`{"name":"x","language":"english please"}`), s400, inv, "language"),
		bad("underscore language", str(`{"name":"x","language":"en_US"}`), s400, inv, "language"),
		bad("long language", str(`{"name":"x","language":"en-`+strings.Repeat("abcdefgh-", 4)+`x"}`), s400, inv, "language"),
		{name: "text/plain", contentType: "text/plain", body: name("x"), status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMedia},
		{name: "no content type", contentType: "-", body: name("x"), status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMedia},
		{name: "form content type", contentType: "application/x-www-form-urlencoded", body: str("name=x"), status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMedia},
		{name: "json suffix type", contentType: "application/problem+json", body: name("x"), status: http.StatusUnsupportedMediaType, code: api.CodeUnsupportedMedia},
		{name: "GET", method: http.MethodGet, status: http.StatusMethodNotAllowed, code: api.CodeMethodNotAllowed, allow: "POST"},
		{name: "HEAD", method: http.MethodHead, status: http.StatusMethodNotAllowed, allow: "POST"},
		{name: "PUT", method: http.MethodPut, body: name("x"), status: http.StatusMethodNotAllowed, code: api.CodeMethodNotAllowed, allow: "POST"},
		{name: "DELETE", method: http.MethodDelete, status: http.StatusMethodNotAllowed, code: api.CodeMethodNotAllowed, allow: "POST"},
		{name: "PATCH", method: http.MethodPatch, body: name("x"), status: http.StatusMethodNotAllowed, code: api.CodeMethodNotAllowed, allow: "POST"},
		{name: "POST a job", path: "/api/jobs/x", body: name("x"), status: http.StatusMethodNotAllowed, code: api.CodeMethodNotAllowed, allow: "GET, HEAD, DELETE"},
		{name: "DELETE an unknown job", method: http.MethodDelete, path: "/api/jobs/" + strings.Repeat("a", 32), status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "POST healthz", path: "/healthz", status: http.StatusMethodNotAllowed, code: api.CodeMethodNotAllowed, allow: "GET, HEAD"},
		{name: "unknown route", method: http.MethodGet, path: "/nope", status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "root", method: http.MethodGet, path: "/", status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "trailing slash", path: "/api/analyze-character/", body: name("x"), status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "no job id", method: http.MethodGet, path: "/api/jobs/", status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "escaped dot-dot id", method: http.MethodGet, path: "/api/jobs/..%2F..", status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "escaped dot-dot to healthz", method: http.MethodGet, path: "/api/jobs/..%2F..%2Fhealthz", status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "NUL id", method: http.MethodGet, path: "/api/jobs/%00", status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "NUL in valid id", method: http.MethodGet, path: "/api/jobs/" + strings.Repeat("a", 31) + "%00", status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "31 hex", method: http.MethodGet, path: "/api/jobs/" + strings.Repeat("a", 31), status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "33 hex", method: http.MethodGet, path: "/api/jobs/" + strings.Repeat("a", 33), status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "uppercase hex", method: http.MethodGet, path: "/api/jobs/" + strings.Repeat("A", 32), status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "slash in id", method: http.MethodGet, path: "/api/jobs/a/b", status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "glob id", method: http.MethodGet, path: "/api/jobs/" + strings.Repeat("*", 32), status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "huge id", method: http.MethodGet, path: "/api/jobs/" + strings.Repeat("f", 4000), status: http.StatusNotFound, code: api.CodeNotFound},
		{name: "unknown id", method: http.MethodGet, path: "/api/jobs/" + strings.Repeat("0", 32), status: http.StatusNotFound, code: api.CodeNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := request{method: cmpOr(c.method, http.MethodPost), path: cmpOr(c.path, path), contentType: cmpOr(c.contentType, "application/json")}
			if r.contentType == "-" {
				r.contentType = ""
			}
			if c.body != nil {
				r.body = c.body()
			}
			resp := e.do(t, r)
			if c.allow != "" {
				if got := resp.header.Get("Allow"); got != c.allow {
					t.Errorf("Allow %q, want %q", got, c.allow)
				}
			}
			if r.method == http.MethodHead {
				if resp.status != c.status || len(resp.body) != 0 {
					t.Errorf("HEAD: %d %q, want %d and no body", resp.status, resp.body, c.status)
				}
				return
			}
			checkError(t, resp, c.status, c.code, c.field)
			if c.message != "" {
				var eb errorBody
				decodeStrict(t, resp.body, &eb)
				if eb.Error.Message != c.message {
					t.Errorf("error.message %q, want %q", eb.Error.Message, c.message)
				}
			}
		})
	}

	// Odd but valid input is taken as sent.
	good := []struct{ name, body, wantName string }{
		{"200 multibyte chars", mustJSON(t, map[string]string{"name": strings.Repeat("é", 200)}), strings.Repeat("é", 200)},
		{"200 emoji", mustJSON(t, map[string]string{"name": strings.Repeat("😀", 200)}), strings.Repeat("😀", 200)},
		{"200 chars after trimming", mustJSON(t, map[string]string{"name": "  " + strings.Repeat("a", 200) + "  "}), strings.Repeat("a", 200)},
		{"RTL override", mustJSON(t, map[string]string{"name": "\u202eevil\u202c \u200fname"}), "\u202eevil\u202c \u200fname"},
		{"ZWJ emoji", `{"name":"👩‍👩‍👧 family"}`, "👩‍👩‍👧 family"},
		{"combining chars", `{"name":"e\u0301\u0301\u0301 Zalgo"}`, "e\u0301\u0301\u0301 Zalgo"},
		{"escaped surrogate pair", `{"name":"\ud83d\ude00"}`, "😀"},
		{"description of 20,000 chars", mustJSON(t, map[string]string{"name": "x", "description": strings.Repeat("ü", 20_000)}), "x"},
		{"language tag", `{"name":"x","language":"zh-Hant-TW"}`, "x"},
		{"jpeg", mustJSON(t, map[string]any{"name": "x", "image": map[string]string{"mime_type": "image/jpeg", "data": b64(jpegBytes)}}), "x"},
		{"webp", mustJSON(t, map[string]any{"name": "x", "image": map[string]string{"mime_type": "image/webp", "data": b64([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))}}), "x"},
	}
	ins := asynq.NewInspectorFromRedisClient(e.rdb)
	for _, g := range good {
		t.Run(g.name, func(t *testing.T) {
			a := accepted(t, e.post(t, g.body, nil), http.StatusAccepted)
			info, err := ins.GetTaskInfo(tasks.Queue, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			p, err := tasks.ParseAnalyzeCharacter(info.Payload)
			if err != nil || p.Name != g.wantName {
				t.Errorf("payload name %q (%v), want %q", p.Name, err, g.wantName)
			}
		})
	}
	for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON", "application/json ; charset=UTF-8"} {
		t.Run("content type "+ct, func(t *testing.T) {
			accepted(t, e.do(t, request{method: http.MethodPost, path: path, contentType: ct,
				body: strings.NewReader(`{"name":"x"}`)}), http.StatusAccepted)
		})
	}

	// After all that, the server still takes a good job.
	accepted(t, e.post(t, `{"name":"Irene Adler"}`, nil), http.StatusAccepted)
	for _, rec := range e.logs.records(t) {
		if rec["level"] == "ERROR" {
			t.Errorf("client errors were logged as server errors: %v", rec)
		}
	}
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestRedisUnreachable(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: closedAddr(t), DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	e := newEnvOn(t, rdb, api.Options{})

	within := func(what string, f func() response) response {
		t.Helper()
		done := make(chan response, 1)
		go func() { done <- f() }()
		select {
		case r := <-done:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer within 10s", what)
			return response{}
		}
	}
	for _, c := range []struct {
		what string
		f    func() response
	}{
		{"POST", func() response { return e.post(t, `{"name":"x"}`, nil) }},
		{"POST with key", func() response { return e.post(t, `{"name":"x"}`, map[string]string{"Idempotency-Key": "k"}) }},
		{"GET job", func() response { return e.get(t, "/api/jobs/"+strings.Repeat("a", 32)) }},
	} {
		r := within(c.what, c.f)
		checkError(t, r, http.StatusServiceUnavailable, api.CodeUnavailable, "")
		if ra := r.header.Get("Retry-After"); ra == "" {
			t.Errorf("%s: no Retry-After", c.what)
		}
	}
	if r := within("readyz", func() response { return e.get(t, "/readyz") }); r.status != http.StatusServiceUnavailable {
		t.Errorf("readyz: %d %s", r.status, r.body)
	} else {
		checkError(t, r, http.StatusServiceUnavailable, api.CodeUnavailable, "")
	}
	if r := within("healthz", func() response { return e.get(t, "/healthz") }); r.status != http.StatusOK {
		t.Errorf("healthz: %d %s", r.status, r.body)
	}
	// Client errors need no Redis and are still answered as such.
	checkError(t, e.post(t, `{"name":""}`, nil), http.StatusBadRequest, api.CodeInvalidRequest, "name")

	var logged bool
	for _, rec := range e.logs.records(t) {
		if rec["level"] == "ERROR" && rec["msg"] == "redis unreachable" {
			logged = true
		}
	}
	if !logged {
		t.Error(`no "redis unreachable" error in the log`)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	for _, p := range []string{"/readyz", "/healthz"} {
		r := e.get(t, p)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	accepted(t, e.post(t, `{"name":"x"}`, nil), http.StatusAccepted)
	e.post(t, `{"name":""}`, nil)
	e.get(t, "/nope")
	e.do(t, request{method: http.MethodDelete, path: "/api/analyze-character"})
	e.get(t, "/api/jobs/"+strings.Repeat("b", 300))

	post := regexp.MustCompile(`^\d{3} POST /api/analyze-character \d+(ms|\.\d+s|s)$`)
	want := map[string]*regexp.Regexp{
		"202 POST":   regexp.MustCompile(`^202 POST /api/analyze-character \d+(ms|\.\d+s|s)$`),
		"400 POST":   regexp.MustCompile(`^400 POST /api/analyze-character \d+(ms|\.\d+s|s)$`),
		"404 GET":    regexp.MustCompile(`^404 GET /nope \d+(ms|\.\d+s|s)$`),
		"405 DELETE": regexp.MustCompile(`^405 DELETE /api/analyze-character \d+(ms|\.\d+s|s)$`),
		"long path":  regexp.MustCompile(`^404 GET /api/jobs/b{190}\.\.\. \d+ms$`),
	}
	var posts int
	for _, rec := range e.logs.records(t) {
		msg, _ := rec["msg"].(string)
		if post.MatchString(msg) {
			posts++
		}
		for k, re := range want {
			if re.MatchString(msg) {
				delete(want, k)
			}
		}
	}
	if posts != 2 {
		t.Errorf("%d POST lines, want 2", posts)
	}
	for k, re := range want {
		t.Errorf("no %s access line matching %s", k, re)
	}
}

// worker runs a real asynq server on e's Redis with the given handlers,
// retrying after an hour so that a retried task stays in the retry set.
func worker(t *testing.T, rdb *redis.Client, handlers map[string]asynq.HandlerFunc) {
	t.Helper()
	mux := asynq.NewServeMux()
	for typ, h := range handlers {
		mux.Handle(typ, h)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Queues:            map[string]int{tasks.Queue: 1},
		Concurrency:       4,
		TaskCheckInterval: 20 * time.Millisecond,
		RetryDelayFunc:    func(int, error, *asynq.Task) time.Duration { return time.Hour },
		ShutdownTimeout:   5 * time.Second,
		LogLevel:          asynq.FatalLevel,
	})
	if err := srv.Start(mux); err != nil {
		t.Fatalf("asynq server: %v", err)
	}
	t.Cleanup(srv.Shutdown)
}

// enqueueMaxRetry is the asynq MaxRetry enqueue gives a task unless told
// otherwise. For a task enqueued directly with asynq.MaxRetry(m) the API
// reports max_attempts = tasks.MaxRuns(m) = m (at least 1).
const enqueueMaxRetry = 3

func enqueue(t *testing.T, rdb *redis.Client, typ string, opts ...asynq.Option) string {
	t.Helper()
	var b [16]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	c := asynq.NewClientFromRedisClient(rdb)
	opts = append([]asynq.Option{asynq.TaskID(id), asynq.Queue(tasks.Queue), asynq.Retention(time.Hour), asynq.MaxRetry(enqueueMaxRetry)}, opts...)
	if _, err := c.Enqueue(asynq.NewTask(typ, []byte(`{"name":"x"}`)), opts...); err != nil {
		t.Fatalf("enqueue %s: %v", typ, err)
	}
	return id
}

func (e *env) waitStatus(t *testing.T, id string, status tasks.Status) api.Job {
	t.Helper()
	end := time.Now().Add(15 * time.Second)
	for {
		j := e.job(t, id)
		if j.Status == status {
			return j
		}
		if time.Now().After(end) {
			t.Fatalf("job %s never became %s; last %+v", id, status, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJobStatusWithoutWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	ins := asynq.NewInspectorFromRedisClient(e.rdb)

	queued := enqueue(t, e.rdb, tasks.TypeAnalyzeCharacter)
	if j := e.job(t, queued); j.Status != tasks.StatusQueued || j.Attempts != 0 || j.MaxAttempts != enqueueMaxRetry || j.Type != tasks.TypeAnalyzeCharacter {
		t.Errorf("pending: %+v", j)
	}
	later := enqueue(t, e.rdb, "other-type", asynq.ProcessIn(time.Hour), asynq.MaxRetry(0))
	if j := e.job(t, later); j.Status != tasks.StatusQueued || j.MaxAttempts != 1 || j.Type != "other-type" {
		t.Errorf("scheduled: %+v", j)
	}
	if err := ins.ArchiveTask(tasks.Queue, queued); err != nil {
		t.Fatal(err)
	}
	if j := e.job(t, queued); j.Status != tasks.StatusFailed || j.Error != nil || j.Result != nil {
		t.Errorf("archived: %+v", j)
	}
	if err := ins.DeleteTask(tasks.Queue, later); err != nil {
		t.Fatal(err)
	}
	checkError(t, e.get(t, "/api/jobs/"+later), http.StatusNotFound, api.CodeNotFound, "")
}

func TestJobStatusWithWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	result := []byte(`{"analysis":{"summary":"A detective.","traits":["observant"]},"model":"gemini-test","usage":{"prompt_tokens":1,"candidates_tokens":2,"total_tokens":3},"key":"#1","key_fingerprint":"ab12","attempts":1,"duration_ms":7}`)
	started := make(chan struct{})
	release := make(chan struct{})
	worker(t, e.rdb, map[string]asynq.HandlerFunc{
		"test:blocked": func(context.Context, *asynq.Task) error {
			return &tasks.JobError{Class: "blocked", Message: "gemini: blocked (200 SAFETY): prompt blocked", Final: true}
		},
		"test:unavailable": func(context.Context, *asynq.Task) error {
			return &tasks.JobError{Class: "unavailable", Message: "every key is cooling down"}
		},
		"test:panic": func(context.Context, *asynq.Task) error { panic("boom") },
		"test:timeout": func(ctx context.Context, _ *asynq.Task) error {
			<-ctx.Done()
			return ctx.Err()
		},
		"test:ok": func(_ context.Context, task *asynq.Task) error {
			_, err := task.ResultWriter().Write(result)
			return err
		},
		"test:slow": func(ctx context.Context, _ *asynq.Task) error {
			close(started)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}) // runs before the worker's Shutdown

	t.Run("blocked", func(t *testing.T) {
		t.Parallel()
		id := enqueue(t, e.rdb, "test:blocked")
		j := e.waitStatus(t, id, tasks.StatusFailed)
		if j.Error == nil || j.Error.Class != "blocked" || j.Error.Message != "gemini: blocked (200 SAFETY): prompt blocked" {
			t.Errorf("error %+v", j.Error)
		}
		if j.Attempts != 1 || j.MaxAttempts != enqueueMaxRetry || j.Result != nil || j.NextAttemptAt != nil {
			t.Errorf("job %+v", j)
		}
	})
	t.Run("retrying", func(t *testing.T) {
		t.Parallel()
		id := enqueue(t, e.rdb, "test:unavailable")
		j := e.waitStatus(t, id, tasks.StatusRetrying)
		if j.Error == nil || j.Error.Class != "unavailable" || j.Error.Message != "every key is cooling down" {
			t.Errorf("error %+v", j.Error)
		}
		if j.Attempts != 1 || j.MaxAttempts != enqueueMaxRetry || j.NextAttemptAt == nil || !j.NextAttemptAt.After(time.Now().Add(50*time.Minute)) {
			t.Errorf("job %+v (next %v)", j, j.NextAttemptAt)
		}
		// Due again but not yet picked up: still retrying, same attempts.
		if err := asynq.NewInspectorFromRedisClient(e.rdb).RunTask(tasks.Queue, id); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "second run", func() bool {
			j = e.job(t, id)
			return j.Attempts == 2 && j.Status == tasks.StatusRetrying
		})
	})
	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		id := enqueue(t, e.rdb, "test:panic", asynq.MaxRetry(0))
		j := e.waitStatus(t, id, tasks.StatusFailed)
		if j.Error == nil || j.Error.Class != "worker" || !strings.Contains(j.Error.Message, "boom") || j.Attempts != 1 || j.MaxAttempts != 1 {
			t.Errorf("job %+v error %+v", j, j.Error)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		id := enqueue(t, e.rdb, "test:timeout", asynq.Timeout(time.Second), asynq.MaxRetry(0))
		j := e.waitStatus(t, id, tasks.StatusFailed)
		if j.Error == nil || j.Error.Class != "timeout" {
			t.Errorf("error %+v", j.Error)
		}
	})
	t.Run("succeeded", func(t *testing.T) {
		t.Parallel()
		id := enqueue(t, e.rdb, "test:ok")
		before := time.Now().Add(-time.Second)
		j := e.waitStatus(t, id, tasks.StatusSucceeded)
		if j.Result == nil || !bytes.Equal(*j.Result, result) {
			t.Errorf("result %s, want %s", ptrString(j.Result), result)
		}
		if j.CompletedAt == nil || j.CompletedAt.Before(before) || j.CompletedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("completed_at %v", j.CompletedAt)
		}
		if j.Attempts != 1 || j.Error != nil || j.NextAttemptAt != nil {
			t.Errorf("job %+v", j)
		}
	})
	t.Run("running", func(t *testing.T) {
		t.Parallel()
		id := enqueue(t, e.rdb, "test:slow")
		select {
		case <-started:
		case <-time.After(15 * time.Second):
			t.Fatal("the slow task never started")
		}
		j := e.job(t, id)
		if j.Status != tasks.StatusRunning || j.Attempts != 1 || j.CompletedAt != nil {
			t.Errorf("job %+v", j)
		}
		close(release)
		e.waitStatus(t, id, tasks.StatusSucceeded)
	})
}

// A repeated Idempotency-Key for a job that already finished answers with
// that job's status, not a new job.
func TestIdempotencyKeyAfterCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	key := map[string]string{"Idempotency-Key": "done"}
	a := accepted(t, e.post(t, `{"name":"x"}`, key), http.StatusAccepted)
	worker(t, e.rdb, map[string]asynq.HandlerFunc{
		tasks.TypeAnalyzeCharacter: func(_ context.Context, task *asynq.Task) error {
			_, err := task.ResultWriter().Write([]byte(`{"ok":true}`))
			return err
		},
	})
	e.waitStatus(t, a.ID, tasks.StatusSucceeded)
	again := accepted(t, e.post(t, `{"name":"x"}`, key), http.StatusOK)
	if again.ID != a.ID || again.Status != tasks.StatusSucceeded {
		t.Errorf("repeat: %+v", again)
	}
}

// A result that is not JSON must not turn into a 200 with an empty body.
func TestJobResultNotJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, api.Options{})
	worker(t, e.rdb, map[string]asynq.HandlerFunc{
		"test:text": func(_ context.Context, task *asynq.Task) error {
			_, err := task.ResultWriter().Write([]byte("not json"))
			return err
		},
	})
	id := enqueue(t, e.rdb, "test:text")
	ins := asynq.NewInspectorFromRedisClient(e.rdb)
	eventually(t, 15*time.Second, "task completes", func() bool {
		info, err := ins.GetTaskInfo(tasks.Queue, id)
		return err == nil && info.State == asynq.TaskStateCompleted
	})
	r := e.get(t, "/api/jobs/"+id)
	if !json.Valid(r.body) {
		t.Errorf("GET job with a non-JSON result: status %d, body %q is not JSON", r.status, r.body)
	}
}

func ptrString(r *json.RawMessage) string {
	if r == nil {
		return "<nil>"
	}
	return string(*r)
}

// fakeKeys is a KeyAdmin that records its calls.
type fakeKeys struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeKeys) Statuses(context.Context) ([]keyring.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return []keyring.Status{{Index: 1, Fingerprint: "ab12", Project: "p", State: keyring.StateReady, Failures: map[string]int64{}}}, nil
}

func (f *fakeKeys) Disable(_ context.Context, fp, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "disable "+fp)
	if fp != "ab12" {
		return keyring.ErrUnknownKey
	}
	return f.err
}

func (f *fakeKeys) Enable(_ context.Context, fp string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "enable "+fp)
	if fp != "ab12" {
		return keyring.ErrUnknownKey
	}
	return f.err
}

func TestKeys(t *testing.T) {
	t.Parallel()
	const token = "keys-test-token"
	bearer := map[string]string{"Authorization": "Bearer " + token}

	// No key view: GET /api/keys is open without tokens and 404s; the admin
	// routes always need a token, so without tokens they answer 403 first.
	none := newEnv(t, api.Options{})
	checkError(t, none.get(t, "/api/keys"), http.StatusNotFound, api.CodeNotFound, "")
	checkError(t, none.do(t, request{method: http.MethodPost, path: "/api/keys/ab12/disable"}), http.StatusForbidden, api.CodeForbidden, "")
	noneTok := newEnv(t, api.Options{Tokens: []string{token}})
	checkError(t, noneTok.do(t, request{method: http.MethodGet, path: "/api/keys", header: bearer}), http.StatusNotFound, api.CodeNotFound, "")
	checkError(t, noneTok.do(t, request{method: http.MethodPost, path: "/api/keys/ab12/disable", header: bearer}), http.StatusNotFound, api.CodeNotFound, "")

	// A key view but no tokens: the admin routes answer 403 and never reach
	// the key pool, whatever is sent.
	open := &fakeKeys{}
	o := newEnv(t, api.Options{Keys: open})
	if r := o.get(t, "/api/keys"); r.status != http.StatusOK {
		t.Errorf("GET /api/keys without tokens: %d %s", r.status, r.body)
	}
	for _, a := range []string{"disable", "enable", "delete"} {
		for _, h := range []map[string]string{nil, bearer} {
			r := o.do(t, request{method: http.MethodPost, path: "/api/keys/ab12/" + a, header: h})
			checkError(t, r, http.StatusForbidden, api.CodeForbidden, "")
		}
	}
	open.mu.Lock()
	if len(open.calls) != 0 {
		t.Errorf("admin routes without tokens reached the key pool: %v", open.calls)
	}
	open.mu.Unlock()

	keys := &fakeKeys{}
	e := newEnv(t, api.Options{Keys: keys, Tokens: []string{token}})
	r := e.do(t, request{method: http.MethodGet, path: "/api/keys", header: bearer})
	var got struct {
		Keys []keyring.Status `json:"keys"`
	}
	decodeStrict(t, r.body, &got)
	if r.status != http.StatusOK || len(got.Keys) != 1 || got.Keys[0].Fingerprint != "ab12" {
		t.Errorf("GET /api/keys: %d %s", r.status, r.body)
	}

	// With tokens, no or a wrong token is 401 and reaches no handler.
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + token}, {"Authorization": token}} {
		for _, a := range []string{"disable", "enable"} {
			r := e.do(t, request{method: http.MethodPost, path: "/api/keys/ab12/" + a, header: h})
			checkError(t, r, http.StatusUnauthorized, api.CodeUnauthorized, "")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("POST %s with %v: WWW-Authenticate %q", a, h, r.header.Get("WWW-Authenticate"))
			}
		}
	}
	keys.mu.Lock()
	if len(keys.calls) != 0 {
		t.Errorf("unauthorized admin requests reached the key pool: %v", keys.calls)
	}
	keys.mu.Unlock()

	// With the token they reach the handler.
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodPost, "/api/keys/ab12/disable", http.StatusOK, ""},
		{http.MethodPost, "/api/keys/ab12/enable", http.StatusOK, ""},
		{http.MethodPost, "/api/keys/zz99/disable", http.StatusNotFound, api.CodeNotFound},
		{http.MethodPost, "/api/keys/ab12/delete", http.StatusNotFound, api.CodeNotFound},
		{http.MethodGet, "/api/keys/ab12/disable", http.StatusMethodNotAllowed, api.CodeMethodNotAllowed},
		{http.MethodPost, "/api/keys", http.StatusMethodNotAllowed, api.CodeMethodNotAllowed},
		{http.MethodPost, "/api/keys/" + strings.Repeat("%ff", 100) + "/enable", http.StatusNotFound, api.CodeNotFound},
	} {
		r := e.do(t, request{method: c.method, path: c.path, header: bearer})
		if c.code == "" {
			if r.status != c.status || !json.Valid(r.body) {
				t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
			}
			continue
		}
		checkError(t, r, c.status, c.code, "")
	}
	keys.mu.Lock()
	calls := strings.Join(keys.calls, ",")
	keys.err = errors.New("dial tcp: connection refused")
	keys.mu.Unlock()
	if !strings.HasPrefix(calls, "disable ab12,enable ab12,disable zz99,") {
		t.Errorf("calls %s", calls)
	}
	checkError(t, e.do(t, request{method: http.MethodGet, path: "/api/keys", header: bearer}), http.StatusServiceUnavailable, api.CodeUnavailable, "")
}

func (f *fakeKeys) Page(ctx context.Context, _ keyring.Query) (keyring.Page, error) {
	st, err := f.Statuses(ctx)
	return keyring.Page{Keys: st}, err
}

func (f *fakeKeys) Summary(ctx context.Context) (keyring.Summary, error) {
	st, err := f.Statuses(ctx)
	s := keyring.Summary{States: map[keyring.State]int{}}
	for _, k := range st {
		s.Keys++
		s.States[k.State]++
	}
	return s, err
}
