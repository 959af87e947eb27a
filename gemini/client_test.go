package gemini

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
)

const (
	testModel = "gemini-2.5-flash"
	testKey   = "AIzaSyD-EXAMPLE-TEST-0123456789abcdefgh"
	newKey    = "AQ.Ab8RN6Lq-EXAMPLE-test-ZYXWVUTSRQPONMLK"
)

func newClient(t *testing.T, base string, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(Options{BaseURL: base, Model: testModel, Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func simpleReq() *Request { return &Request{Text: []string{"Summarise Sherlock Holmes."}} }

// asError asserts err is an *Error that never shows key.
func asError(t *testing.T, err error, key string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %T %v, want *Error", err, err)
	}
	assertNoKey(t, err, key)
	return e
}

// assertNoKey checks the error text and every wrapped error's text for the
// key or any 12-character piece of it.
func assertNoKey(t *testing.T, err error, key string) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		for _, s := range []string{e.Error(), strings.ReplaceAll(e.Error(), `\`, "")} {
			for i := 0; i+12 <= len(key); i++ {
				if strings.Contains(s, key[i:i+12]) {
					t.Fatalf("error text %q contains key piece %q", s, key[i:i+12])
				}
			}
		}
	}
}

func TestFixtures(t *testing.T) {
	type want struct {
		class               Class
		status              int
		canonical, reason   string
		retryAfter          time.Duration
		quotaID, quotaValue string
		projectWide, perDay bool
		retryable, keyFault bool
	}
	cases := map[string]want{
		"400_api_key_invalid":      {class: ClassKeyInvalid, status: 400, canonical: "INVALID_ARGUMENT", reason: "API_KEY_INVALID", retryable: true, keyFault: true},
		"400_invalid_argument":     {class: ClassBadRequest, status: 400, canonical: "INVALID_ARGUMENT"},
		"400_location_unsupported": {class: ClassLocation, status: 400, canonical: "FAILED_PRECONDITION"},
		"401_unauthenticated":      {class: ClassUnauthenticated, status: 401, canonical: "UNAUTHENTICATED", reason: "ACCESS_TOKEN_TYPE_UNSUPPORTED", retryable: true, keyFault: true},
		"403_consumer_suspended":   {class: ClassPermissionDenied, status: 403, canonical: "PERMISSION_DENIED", reason: "CONSUMER_SUSPENDED", projectWide: true, retryable: true, keyFault: true},
		"403_leaked":               {class: ClassPermissionDenied, status: 403, canonical: "PERMISSION_DENIED", retryable: true, keyFault: true},
		"403_service_disabled":     {class: ClassPermissionDenied, status: 403, canonical: "PERMISSION_DENIED", reason: "SERVICE_DISABLED", projectWide: true, retryable: true, keyFault: true},
		"404_model_not_found":      {class: ClassNotFound, status: 404, canonical: "NOT_FOUND"},
		"429_input_tpm":            {class: ClassRateLimited, status: 429, canonical: "RESOURCE_EXHAUSTED", retryAfter: 26 * time.Second, quotaID: "GenerateContentInputTokensPerModelPerMinute-FreeTier", quotaValue: "250000", retryable: true},
		"429_no_details":           {class: ClassRateLimited, status: 429, canonical: "RESOURCE_EXHAUSTED", retryable: true},
		"429_per_day":              {class: ClassRateLimited, status: 429, canonical: "RESOURCE_EXHAUSTED", retryAfter: 37 * time.Second, quotaID: "GenerateRequestsPerDayPerProjectPerModel-FreeTier", quotaValue: "20", perDay: true, retryable: true},
		"429_per_minute":           {class: ClassRateLimited, status: 429, canonical: "RESOURCE_EXHAUSTED", retryAfter: 26 * time.Second, quotaID: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", quotaValue: "10", retryable: true},
		"500_internal":             {class: ClassInternal, status: 500, canonical: "INTERNAL", retryable: true},
		"503_deadline_expired":     {class: ClassUnavailable, status: 503, canonical: "UNAVAILABLE", retryable: true},
		"503_overloaded":           {class: ClassUnavailable, status: 503, canonical: "UNAVAILABLE", retryable: true},
		"504_deadline_exceeded":    {class: ClassTimeout, status: 504, canonical: "DEADLINE_EXCEEDED", retryable: true},
		"200_finish_safety":        {class: ClassBlocked, status: 200, reason: "SAFETY"},
		"200_prompt_blocked":       {class: ClassBlocked, status: 200, reason: "SAFETY"},
		"200_max_tokens":           {class: ClassMaxTokens, status: 200, reason: "MAX_TOKENS"},
		"200_max_tokens_thinking":  {class: ClassMaxTokens, status: 200, reason: "MAX_TOKENS"},
		// The spend cap's RetryInfo is a rate limit like any other to the
		// classifier; SpendCap tells it apart (TestSpendCapAndShed).
		"429_spend_cap": {class: ClassRateLimited, status: 429, canonical: "RESOURCE_EXHAUSTED", retryAfter: 41 * time.Second, quotaID: "GenerateContentSpendPerProjectPer10Minutes-PaidTier1", quotaValue: "10", retryable: true},
		"503_flex_shed": {class: ClassShed, status: 503, canonical: "UNAVAILABLE", retryable: true},
		"200_ok_json":   {},
	}
	for _, name := range geminifake.FixtureNames() {
		if _, ok := cases[name]; !ok {
			t.Errorf("fixture %s has no test case", name)
		}
	}
	up, base := faketest.Start(t, geminifake.Options{})
	c := newClient(t, base, 5*time.Second)
	n := 0
	for name, w := range cases {
		n++
		key := fmt.Sprintf("%s-%02d", testKey, n) // one key per case: Always is per key
		t.Run(name, func(t *testing.T) {
			up.Always(key, geminifake.FixtureReply(name))
			resp, err := c.Generate(t.Context(), key, simpleReq())
			if name == "200_ok_json" {
				if err != nil {
					t.Fatalf("Generate: %v", err)
				}
				want := Response{Text: `{"summary":"A stubborn but loyal detective.","traits":["observant","stubborn"]}`,
					FinishReason: "STOP", Usage: Usage{57, 21, 78, 0, 0}, ModelVersion: "gemini-2.5-flash"}
				resp.SafetyRatings = nil
				if !reflect.DeepEqual(*resp, want) {
					t.Fatalf("resp = %+v, want %+v", *resp, want)
				}
				return
			}
			if resp != nil {
				t.Errorf("resp = %+v, want nil", resp)
			}
			e := asError(t, err, key)
			got := want{e.Class, e.HTTPStatus, e.Status, e.Reason, e.RetryAfter, e.QuotaID, e.QuotaValue,
				e.ProjectWide, e.PerDay(), e.Retryable(), e.KeyFault()}
			if got != w {
				t.Errorf("got  %+v\nwant %+v", got, w)
			}
			if e.Message == "" || !strings.HasPrefix(e.Error(), "gemini: "+string(w.class)) {
				t.Errorf("Message %q, Error() %q", e.Message, e.Error())
			}
		})
	}
}

func TestRequestOnTheWire(t *testing.T) {
	up, base := faketest.Start(t, geminifake.Options{})
	c := newClient(t, base, 5*time.Second)
	png := []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff}
	schema := json.RawMessage(`{"type":"object","properties":{"summary":{"type":"string"}}}`)
	_, err := c.Generate(t.Context(), testKey, &Request{
		SystemInstruction: "You are terse.",
		Text:              []string{"first", "second"},
		Images:            []InlineData{{MIMEType: "image/png", Data: png}},
		ResponseSchema:    schema,
		MaxOutputTokens:   256,
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	calls := up.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	call := calls[0]
	if call.Method != http.MethodPost || call.Path != "/v1beta/models/gemini-2.5-flash:generateContent" ||
		call.Key != testKey || call.Query != "" || call.Model != testModel || call.Status != 200 {
		t.Fatalf("call = %+v", call)
	}
	var body struct {
		SystemInstruction struct {
			Parts []struct{ Text string }
		} `json:"systemInstruction"`
		Contents []struct {
			Role  string
			Parts []struct {
				Text       *string
				InlineData *struct{ MIMEType, Data string } `json:"inlineData"`
			}
		}
		GenerationConfig struct {
			ResponseMimeType   string          `json:"responseMimeType"`
			ResponseJsonSchema json.RawMessage `json:"responseJsonSchema"`
			MaxOutputTokens    int             `json:"maxOutputTokens"`
		} `json:"generationConfig"`
	}
	if err := json.Unmarshal(call.Body, &body); err != nil {
		t.Fatalf("body %s: %v", call.Body, err)
	}
	if p := body.SystemInstruction.Parts; len(p) != 1 || p[0].Text != "You are terse." {
		t.Errorf("systemInstruction = %+v", body.SystemInstruction)
	}
	if len(body.Contents) != 1 || body.Contents[0].Role != "user" || len(body.Contents[0].Parts) != 3 {
		t.Fatalf("contents = %s", call.Body)
	}
	parts := body.Contents[0].Parts
	if *parts[0].Text != "first" || *parts[1].Text != "second" || parts[2].Text != nil {
		t.Errorf("text parts: %s", call.Body)
	}
	if d := parts[2].InlineData; d == nil || d.MIMEType != "image/png" || d.Data != base64.StdEncoding.EncodeToString(png) {
		t.Errorf("inlineData: %s", call.Body)
	}
	g := body.GenerationConfig
	var gotSchema, wantSchema any
	json.Unmarshal(g.ResponseJsonSchema, &gotSchema)
	json.Unmarshal(schema, &wantSchema)
	if g.ResponseMimeType != "application/json" || g.MaxOutputTokens != 256 || !jsonEqual(gotSchema, wantSchema) {
		t.Errorf("generationConfig = %s", call.Body)
	}
	if bytes.Contains(call.Body, []byte(testKey)) {
		t.Errorf("body contains the key")
	}

	// Without schema and limit, generationConfig is left out.
	up.Reset()
	if _, err := c.Generate(t.Context(), testKey, simpleReq()); err != nil {
		t.Fatal(err)
	}
	if b := up.Calls()[0].Body; bytes.Contains(b, []byte("generationConfig")) || bytes.Contains(b, []byte("systemInstruction")) {
		t.Errorf("body %s has empty sections", b)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestNoKeyInErrors(t *testing.T) {
	up, base := faketest.Start(t, geminifake.Options{})
	c := newClient(t, base, 5*time.Second)

	for _, key := range []string{testKey, newKey} {
		// A 403 whose message echoes the real key, as Google's does.
		up.Always(key, geminifake.Reply{Status: 403, Body: bytes.ReplaceAll(geminifake.Fixture("403_consumer_suspended"), []byte("REDACTED"), []byte(key))})
		_, err := c.Generate(t.Context(), key, simpleReq())
		e := asError(t, err, key)
		if e.Class != ClassPermissionDenied || !e.ProjectWide || !strings.Contains(e.Message, "api_key:[redacted]") {
			t.Errorf("%s: %+v", key, e)
		}
	}

	// An HTML 502 from a proxy, echoing the key.
	up.Always(testKey, geminifake.Reply{Status: 502, Body: []byte("<html><head><title>502 Bad Gateway</title></head><body>\n<h1>Bad Gateway</h1><p>upstream failed for " + testKey + "</p></body></html>")})
	_, err := c.Generate(t.Context(), testKey, simpleReq())
	e := asError(t, err, testKey)
	if e.Class != ClassUnavailable || e.HTTPStatus != 502 || !strings.Contains(e.Message, "Bad Gateway") || strings.Contains(e.Message, "<") {
		t.Errorf("html 502: %+v", e)
	}

	// A 200 that is not JSON, echoing the key.
	up.Always(testKey, geminifake.Reply{Status: 200, Body: []byte("oops " + testKey)})
	_, err = c.Generate(t.Context(), testKey, simpleReq())
	if e := asError(t, err, testKey); e.Class != ClassUnusable || !e.Retryable() {
		t.Errorf("non-JSON 200: %+v", e)
	}

	// Connection refused: a closed port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	closed := newClient(t, "http://"+addr, 5*time.Second)
	for _, key := range []string{testKey, newKey} {
		_, err = closed.Generate(t.Context(), key, simpleReq())
		e = asError(t, err, key)
		if e.Class != ClassNetwork || e.HTTPStatus != 0 || !e.Retryable() || e.KeyFault() || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("refused: %+v (%v)", e, err)
		}
		err = closed.Probe(t.Context(), key)
		if e := asError(t, err, key); e.Class != ClassNetwork {
			t.Errorf("probe refused: %+v", e)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"Consumer 'api_key:AIzaXYZ' has been suspended.": "Consumer 'api_key:[redacted]' has been suspended.",
		`Get "https://h/x?alt=json&key=AQ.abc": EOF`:     `Get "https://h/x?alt=json&key=[redacted]": EOF`,
		"the secret-key-1 leaked":                        "the [redacted] leaked",
		"nothing here":                                   "nothing here",
	} {
		if got := redact(in, "secret-key-1"); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
	if got := redact("abc", ""); got != "abc" {
		t.Errorf("empty key: %q", got)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	up, base := faketest.Start(t, geminifake.Options{})
	slow := geminifake.OK(`{"late":true}`)
	slow.Delay = 3 * time.Second
	up.Always(testKey, slow)

	t.Run("per-call timeout", func(t *testing.T) {
		c := newClient(t, base, 100*time.Millisecond)
		start := time.Now()
		_, err := c.Generate(t.Context(), testKey, simpleReq())
		e := asError(t, err, testKey)
		if e.Class != ClassTimeout || !e.Retryable() || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %+v (%v)", e, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		c := newClient(t, base, 10*time.Second)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := c.Generate(ctx, testKey, simpleReq())
		e := asError(t, err, testKey)
		if !errors.Is(err, context.Canceled) || e.Class != ClassCanceled || e.Retryable() {
			t.Errorf("got %+v (%v)", e, err)
		}
	})
	t.Run("caller deadline", func(t *testing.T) {
		c := newClient(t, base, 10*time.Second)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Generate(ctx, testKey, simpleReq())
		e := asError(t, err, testKey)
		if !errors.Is(err, context.DeadlineExceeded) || e.Class != ClassTimeout {
			t.Errorf("got %+v (%v)", e, err)
		}
	})
}

func TestUnusableAndTruncated(t *testing.T) {
	up, base := faketest.Start(t, geminifake.Options{})
	c := newClient(t, base, 5*time.Second)
	schemaReq := simpleReq()
	schemaReq.ResponseSchema = json.RawMessage(`{"type":"object"}`)
	for _, tc := range []struct {
		name  string
		reply geminifake.Reply
		req   *Request
		class Class
	}{
		{"html 200", geminifake.Reply{Status: 200, Body: []byte("<html>hello</html>")}, simpleReq(), ClassUnusable},
		{"truncated 200", geminifake.Reply{Status: 200, Body: []byte(`{"candidates":[{"content":{"parts":[{"te`)}, simpleReq(), ClassUnusable},
		{"no candidates", geminifake.Reply{Status: 200, Body: []byte(`{"usageMetadata":{"promptTokenCount":3}}`)}, simpleReq(), ClassUnusable},
		{"recitation", geminifake.Reply{Status: 200, Body: []byte(`{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"RECITATION"}]}`)}, simpleReq(), ClassUnusable},
		{"empty text", geminifake.Reply{Status: 200, Body: []byte(`{"candidates":[{"content":{"parts":[]},"finishReason":"STOP"}]}`)}, simpleReq(), ClassUnusable},
		{"not JSON for schema", geminifake.OK("Sure! Here it is"), schemaReq, ClassUnusable},
		{"truncated 503", geminifake.Reply{Status: 503, Body: []byte(`{"error":{"code":503,"mess`)}, simpleReq(), ClassNetwork},
		{"empty 503", geminifake.Reply{Status: 503}, simpleReq(), ClassUnavailable},
		{"402", geminifake.Reply{Status: 402, Body: []byte(`{"error":{"code":402,"message":"Payment required"}}`)}, simpleReq(), ClassBilling},
		{"prepayment", geminifake.Reply{Status: 429, Body: []byte(`{"error":{"code":429,"message":"Your prepayment credits are depleted.","status":"RESOURCE_EXHAUSTED"}}`)}, simpleReq(), ClassBilling},
		{"oversize", geminifake.Reply{Status: 200, Body: bytes.Repeat([]byte(" "), maxBody+1)}, simpleReq(), ClassUnusable},
	} {
		key := fmt.Sprintf("%s-%s", testKey, base64.RawURLEncoding.EncodeToString([]byte(tc.name)))
		t.Run(tc.name, func(t *testing.T) {
			up.Always(key, tc.reply)
			_, err := c.Generate(t.Context(), key, tc.req)
			if e := asError(t, err, key); e.Class != tc.class || !e.Retryable() {
				t.Errorf("got %+v, want class %s", e, tc.class)
			}
		})
	}

	// The connection drops mid-body.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		io.WriteString(w, `{"candidates":[`)
	}))
	defer srv.Close()
	_, err := newClient(t, srv.URL, 5*time.Second).Generate(t.Context(), testKey, simpleReq())
	if e := asError(t, err, testKey); e.Class != ClassNetwork || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut body: %+v (%v)", e, err)
	}
}

func TestProbe(t *testing.T) {
	up, base := faketest.Start(t, geminifake.Options{})
	c := newClient(t, base, 5*time.Second)
	if err := c.Probe(t.Context(), testKey); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	up.Always(newKey, geminifake.FixtureReply("401_unauthenticated"))
	e := asError(t, c.Probe(t.Context(), newKey), newKey)
	if e.Class != ClassUnauthenticated {
		t.Errorf("got %+v", e)
	}
	calls := up.Calls()
	if len(calls) != 2 || calls[0].Method != http.MethodGet || calls[0].Path != "/v1beta/models/gemini-2.5-flash" || calls[0].Key != testKey {
		t.Errorf("calls = %+v", calls)
	}
}

func TestNewAndBadRequest(t *testing.T) {
	for _, o := range []Options{
		{Model: ""},
		{Model: "m", BaseURL: "ftp://x"},
		{Model: "m", BaseURL: "://"},
		{Model: "m", BaseURL: "http://h?key=x"},
		{Model: "a/b"},
		{Model: "m", Timeout: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) = nil error", o)
		}
	}
	c, err := New(Options{Model: "models/gemini-2.5-pro"})
	if err != nil || c.Model() != "gemini-2.5-pro" || c.base != DefaultBaseURL || c.timeout != DefaultTimeout {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, req := range []*Request{nil, {}, {Text: []string{"x"}, ResponseSchema: json.RawMessage("{")}} {
		_, err := c.Generate(t.Context(), testKey, req)
		if e := asError(t, err, testKey); e.Class != ClassBadRequest || e.Retryable() {
			t.Errorf("%+v: %+v", req, e)
		}
	}
}
