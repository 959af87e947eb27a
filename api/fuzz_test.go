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
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
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
		{`{"name":"\udc00x"}`, ct, ""},
		{`{"name":"\ud83d\ude00"}`, ct, ""},
		{`{"name":"\ud83d\u0041"}`, ct, ""},
		{`{"name":"a\\ud800"}`, ct, ""},
		{`{"name":"x","name":"y"}`, ct, ""},
		{`{"name":"x","NAME":"y"}`, ct, ""},
		{`{"n\u0061me":"x","name":"y"}`, ct, ""},
		{`{"name":"x","image":{"mime_type":"image/png","data":"iVBORw0KGgoAAAANSUhEUg==","mime_type":"image/png"}}`, ct, ""},
		{`{"name":"x","image":{"mime_type":"image/png","data":"iVBORw0KGgoAAAANSUhEUg==","foo":1}}`, ct, ""},
		{`{"name":"x","image":{"MIME_TYPE":"image/png","data":"iVBORw0KGgoAAAANSUhEUg=="}}`, ct, ""},
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
	if !plainJSON(body) {
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

// plainJSON walks the tokens of body's first JSON value and says whether
// it is free of what the API refuses although encoding/json would take it:
// an object key given twice (without regard to case, as encoding/json
// matches fields), and an escaped lone UTF-16 surrogate in a string. It
// says true for what it cannot read: the decoder judges that.
func plainJSON(body []byte) bool {
	type object struct {
		keys      []string
		expectKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []*object // nil for an array
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1] != nil {
			stack[n-1].expectKey = true
		}
	}
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return true
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				stack = append(stack, &object{expectKey: true})
			case '[':
				stack = append(stack, nil)
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			raw := body[start:dec.InputOffset()]
			if strings.ContainsRune(tok, utf8.RuneError) && loneSurrogate(raw[bytes.IndexByte(raw, '"'):]) {
				return false
			}
			if n := len(stack); n > 0 && stack[n-1] != nil && stack[n-1].expectKey {
				o := stack[n-1]
				for _, k := range o.keys {
					if strings.EqualFold(k, tok) {
						return false
					}
				}
				o.keys = append(o.keys, tok)
				o.expectKey = false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
		if len(stack) == 0 {
			return true
		}
	}
}

// loneSurrogate reports a \uXXXX escape of half a surrogate pair without
// its other half in the JSON string raw (quotes included).
func loneSurrogate(raw []byte) bool {
	s := string(raw)
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i+1 < len(s) && s[i+1] != 'u' {
			i++
			continue
		}
		if i+6 > len(s) {
			return false
		}
		r, err := strconv.ParseUint(s[i+2:i+6], 16, 32)
		if err != nil {
			return false
		}
		if utf16.IsSurrogate(rune(r)) {
			if r >= 0xdc00 || i+12 > len(s) || s[i+6:i+8] != "\\u" {
				return true
			}
			r2, err := strconv.ParseUint(s[i+8:i+12], 16, 32)
			if err != nil || utf16.DecodeRune(rune(r), rune(r2)) == utf8.RuneError {
				return true
			}
			i += 6
		}
		i += 5
	}
	return false
}
