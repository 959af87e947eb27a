package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"testing"
	"unicode/utf8"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/tasks"
)

// FuzzAnalyzeCharacterRequest posts arbitrary bodies, content types and
// Idempotency-Keys to the real handler on a real Redis: never a 5xx or a
// panic, every 4xx is {"error":{...}}, and a 202 or 200 only for a body the
// worker's own validation accepts (and the job it queued parses back).
func FuzzAnalyzeCharacterRequest(f *testing.F) {
	rdb, _ := redistest.Open(f)
	srv, err := api.New(rdb, api.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	inspect := asynq.NewInspectorFromRedisClient(rdb)
	h := srv.Handler()

	const ct = "application/json"
	for _, s := range []struct{ body, ctype, idem string }{
		{`{"name":"Sherlock Holmes","description":"A consulting detective in London.","language":"en"}`, ct, ""},
		{`{"name":"Sherlock Holmes"}`, ct, "idem-1"},
		{`{"name":"Sherlock Holmes"}`, "application/json; charset=utf-8", "idem-1"},
		{`{"name":"Mycroft Holmes"}`, ct, "idem-1"}, // the key again, another request: 422
		{`{"name":"Irene","image":{"mime_type":"image/png","data":"iVBORw0KGgoAAAANSUhEUg=="}}`, ct, ""},
		{`{"name":"Irene","image":{"mime_type":"image/gif","data":"R0lGODlh"}}`, ct, ""},
		{`{"name":"Irene","image":{"mime_type":"image/jpeg","data":"data:image/jpeg;base64,/9j/"}}`, ct, ""},
		{`{"name":"Irene","image":{"mime_type":"image/webp","data":"UklGRgAAAABXRUJQ"}}`, ct, ""},
		{`{"name":"   "}`, ct, ""},
		{`{"name":"a\u0000b"}`, ct, ""},
		{`{"name":"a","language":"pt-BR"}`, ct, ""},
		{`{"name":"a","language":"not a tag"}`, ct, ""},
		{`{"name":"a","extra":1}`, ct, ""},
		{`{"name":"a"} {"name":"b"}`, ct, ""},
		{`{"name":["a"]}`, ct, ""},
		{`[]`, ct, ""},
		{`null`, ct, ""},
		{`{"name":"a","image":null}`, ct, ""},
		{`{"name":"a","image":{}}`, ct, ""},
		{`{"name":"a"}`, "text/plain", ""},
		{`{"name":"a"}`, "", ""},
		{`{"name":"a"}`, "application/json; =bad", ""},
		{`{"name":"a"}`, ct, "\x00"},
		{`{"name":"a"}`, ct, string(bytes.Repeat([]byte("k"), 256))},
		{`{"name":"\xff"}`, ct, ""},
		{`{"name":"\ud800"}`, ct, ""},
		{string(bytes.Repeat([]byte("["), 10000)), ct, ""},
		{``, ct, ""},
		{`{"name":1e999}`, ct, ""},
	} {
		f.Add([]byte(s.body), s.ctype, s.idem)
	}
	f.Fuzz(func(t *testing.T, body []byte, ctype, idem string) {
		req := httptest.NewRequest(http.MethodPost, "/api/analyze-character", bytes.NewReader(body))
		// Header values with CR, LF or NUL cannot reach a handler over the
		// wire (net/http refuses them); the handler is called directly, so
		// pass them anyway: it must cope with whatever a header holds.
		req.Header.Set("Content-Type", ctype)
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		got, _ := io.ReadAll(res.Body)

		ok := acceptable(body, ctype, idem)
		switch res.StatusCode {
		case http.StatusAccepted, http.StatusOK:
			if !ok {
				t.Fatalf("%d for a request validation refuses: body %q, Content-Type %q, Idempotency-Key %q: %s", res.StatusCode, body, ctype, idem, got)
			}
			var a api.JobAccepted
			if err := json.Unmarshal(got, &a); err != nil || a.ID == "" || a.StatusURL != "/api/jobs/"+a.ID {
				t.Fatalf("%d with body %s: %v", res.StatusCode, got, err)
			}
			info, err := inspect.GetTaskInfo(tasks.Queue, a.ID)
			if err != nil {
				t.Fatalf("accepted job %s is not in the queue: %v", a.ID, err)
			}
			if _, err := tasks.ParseAnalyzeCharacter(info.Payload); err != nil {
				t.Fatalf("accepted job %s has a payload the worker refuses: %v (%q)", a.ID, err, info.Payload)
			}
		case http.StatusUnprocessableEntity:
			// A valid request whose Idempotency-Key an earlier input used
			// for another request.
			id := openJobID(idem)
			info, err := inspect.GetTaskInfo(tasks.Queue, id)
			if !ok || idem == "" || err != nil {
				t.Fatalf("422 for body %q, Idempotency-Key %q (job %s: %v): %s", body, idem, id, err, got)
			}
			if want := normalized(body); bytes.Equal(info.Payload, want) {
				t.Fatalf("422 for the request that made job %s: %q: %s", id, body, got)
			}
		default:
			if res.StatusCode >= 500 || res.StatusCode < 400 {
				t.Fatalf("status %d for body %q, Content-Type %q, Idempotency-Key %q: %s", res.StatusCode, body, ctype, idem, got)
			}
			if ok {
				t.Fatalf("%d for a valid request %q (Content-Type %q, Idempotency-Key %q): %s", res.StatusCode, body, ctype, idem, got)
			}
			var e struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
					Field   string `json:"field"`
				} `json:"error"`
			}
			dec := json.NewDecoder(bytes.NewReader(got))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%d: body %q is not {\"error\":{\"code\",\"message\"}}: %v", res.StatusCode, got, err)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%d: Content-Type %q", res.StatusCode, ct)
			}
		}
	})
}

// openJobID is the job id of an Idempotency-Key on an API without tokens.
func openJobID(idem string) string {
	sum := sha256.Sum256([]byte(tasks.TypeAnalyzeCharacter + "\x00" + idem))
	return hex.EncodeToString(sum[:16])
}

// normalized is the payload a valid body is queued as.
func normalized(body []byte) []byte {
	var p tasks.AnalyzeCharacter
	_ = json.Unmarshal(body, &p)
	p.Normalize()
	b, _ := json.Marshal(p)
	return b
}

// acceptable is the oracle: what the API must accept, decided from the
// contract (tasks) rather than the handler's code: application/json, an
// Idempotency-Key of printable ASCII up to 255 bytes, valid UTF-8 holding
// exactly one JSON object of known fields, and a payload that normalizes
// and validates as the worker's tasks.ParseAnalyzeCharacter will.
func acceptable(body []byte, ctype, idem string) bool {
	if len(idem) > 255 {
		return false
	}
	for _, c := range []byte(idem) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	if mt, _, err := mime.ParseMediaType(ctype); err != nil || mt != "application/json" || !utf8.Valid(body) {
		return false
	}
	var p tasks.AnalyzeCharacter
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&p) != nil || dec.Decode(&struct{}{}) != io.EOF {
		return false
	}
	p.Normalize()
	if p.Validate() != nil {
		return false
	}
	b, err := json.Marshal(p)
	if err != nil {
		return false
	}
	_, err = tasks.ParseAnalyzeCharacter(b)
	return err == nil
}
