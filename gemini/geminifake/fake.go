// Package geminifake is a fake Gemini upstream: an http.Handler that answers
// generateContent and model GET (probe) calls with scripted replies, built
// from the real error bodies embedded in fixtures/. Tests start it with
// internal/faketest; `keyq dev` and `keyq fake` serve it as a simulator
// (see Simulated).
package geminifake

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed fixtures/*.json
var fixtures embed.FS

// Fixture returns the embedded body named name (e.g. "503_overloaded"), or
// nil if there is no such fixture.
func Fixture(name string) []byte {
	b, err := fixtures.ReadFile("fixtures/" + name + ".json")
	if err != nil {
		return nil
	}
	return b
}

// FixtureNames returns the names of all embedded fixtures, sorted.
func FixtureNames() []string {
	entries, _ := fixtures.ReadDir("fixtures")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	slices.Sort(names)
	return names
}

// Reply is one scripted answer.
type Reply struct {
	Status int           // HTTP status; 0 means 200
	Body   []byte        // sent as is
	Delay  time.Duration // wait before answering (stops if the client goes away)
}

// FixtureReply returns the fixture name with the status of its numeric
// prefix ("429_per_day" -> 429). An unknown name gives a 500 whose body says so.
func FixtureReply(name string) Reply {
	body := Fixture(name)
	prefix, _, _ := strings.Cut(name, "_")
	status, err := strconv.Atoi(prefix)
	if body == nil || err != nil {
		return Reply{Status: http.StatusInternalServerError,
			Body: fmt.Appendf(nil, `{"error":{"code":500,"message":"geminifake: unknown fixture %q","status":"INTERNAL"}}`, name)}
	}
	return Reply{Status: status, Body: body}
}

// OK returns a 200 generateContent answer with text, finishReason STOP, a
// safety rating and usage numbers: 10 prompt tokens of which 4 cached, 3
// thinking tokens, and about a token per 4 bytes of text.
func OK(text string) Reply {
	out := len(text)/4 + 1
	body, _ := json.Marshal(map[string]any{
		"candidates": []any{map[string]any{
			"content":       map[string]any{"role": "model", "parts": []any{map[string]any{"text": text}}},
			"finishReason":  "STOP",
			"index":         0,
			"safetyRatings": []any{map[string]string{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"}},
		}},
		"usageMetadata": map[string]int{"promptTokenCount": 10, "candidatesTokenCount": out, "totalTokenCount": 10 + out + 3,
			"thoughtsTokenCount": 3, "cachedContentTokenCount": 4},
		"modelVersion": "geminifake",
	})
	return Reply{Status: http.StatusOK, Body: body}
}

// Usage is an answer's usageMetadata, as the fake sent it.
type Usage struct {
	Prompt     int `json:"promptTokenCount"`
	Candidates int `json:"candidatesTokenCount"`
	Total      int `json:"totalTokenCount"`
	Thoughts   int `json:"thoughtsTokenCount"`
	Cached     int `json:"cachedContentTokenCount"`
}

func usageOf(body []byte) Usage {
	var w struct {
		UsageMetadata Usage `json:"usageMetadata"`
	}
	_ = json.Unmarshal(body, &w)
	return w.UsageMetadata
}

// Call is one request the upstream received.
type Call struct {
	Key    string // x-goog-api-key header, or the ?key= value if the header was empty
	Model  string
	Method string
	Path   string
	Query  string // raw query; a real client sends none
	At     time.Time
	Status int    // status answered; 0 if the client went away first
	Body   []byte // request body
	Usage  Usage  // the usageMetadata answered (zero for errors)
}

// Options configure an Upstream.
type Options struct {
	// Respond gives the reply to a generateContent call when no Script entry
	// or Always reply applies to its key. Default: FixtureReply("200_ok_json").
	Respond func(key string, req []byte) Reply
	// Latency is added to every generateContent reply. Default 0.
	Latency time.Duration
}

// Upstream is the fake. It is an http.Handler, safe for concurrent use.
type Upstream struct {
	opts Options

	mu      sync.Mutex
	scripts map[string][]Reply
	always  map[string]Reply
	models  map[string]Reply
	calls   []Call
}

// New returns an Upstream; serve it with httptest.NewServer or http.Server.
func New(opts Options) *Upstream {
	if opts.Respond == nil {
		opts.Respond = func(string, []byte) Reply { return FixtureReply("200_ok_json") }
	}
	return &Upstream{opts: opts, scripts: map[string][]Reply{}, always: map[string]Reply{}, models: map[string]Reply{}}
}

// Script queues replies for key's generateContent calls, consumed in order;
// afterwards the key falls back to its Always reply, then to Options.Respond.
func (u *Upstream) Script(key string, replies ...Reply) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.scripts[key] = append(u.scripts[key], replies...)
}

// Always makes every generateContent call with key (once its script is used
// up) answer r. A 400/401/402/403 r also answers the key's probes.
func (u *Upstream) Always(key string, r Reply) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.always[key] = r
}

// AlwaysModel makes every call for model (generateContent and probe),
// whatever its key, answer r: a retired model's 404, say. It comes before
// scripts and Always replies.
func (u *Upstream) AlwaysModel(model string, r Reply) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.models[model] = r
}

// Calls returns a copy of the calls received, in arrival order.
func (u *Upstream) Calls() []Call {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.calls)
}

// Reset forgets scripts, Always replies and recorded calls.
func (u *Upstream) Reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	clear(u.scripts)
	clear(u.always)
	clear(u.models)
	u.calls = nil
}

// ServeHTTP answers POST /v1beta/models/{model}:generateContent and
// GET /v1beta/models/{model}.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := parseRequest(r)
	u.mu.Lock()
	i := len(u.calls)
	u.calls = append(u.calls, Call{Key: q.key, Model: q.model, Method: r.Method, Path: r.URL.Path,
		Query: r.URL.RawQuery, At: time.Now(), Body: q.body})
	reply := u.reply(q) // unlocks and locks again around Options.Respond
	u.mu.Unlock()

	if !wait(r.Context(), reply.Delay) {
		return // the client went away; Status stays 0
	}
	status := cmp.Or(reply.Status, http.StatusOK)
	ctype := "application/json; charset=UTF-8"
	if !json.Valid(reply.Body) {
		ctype = http.DetectContentType(reply.Body)
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	w.Write(reply.Body)
	u.mu.Lock()
	u.calls[i].Status = status
	if status == http.StatusOK && q.generate {
		u.calls[i].Usage = usageOf(reply.Body)
	}
	u.mu.Unlock()
}

// request is what the fake reads of a call.
type request struct {
	body            []byte
	key, model      string
	queryKey        bool // the key came in ?key= (a real client never does that)
	generate, probe bool
}

func parseRequest(r *http.Request) request {
	q := request{key: r.Header.Get("x-goog-api-key"), queryKey: r.URL.Query().Has("key")}
	q.body, _ = io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if q.key == "" {
		q.key = r.URL.Query().Get("key")
	}
	rest, isModels := strings.CutPrefix(r.URL.Path, "/v1beta/models/")
	model, generate := strings.CutSuffix(rest, ":generateContent")
	q.generate = generate && isModels && r.Method == http.MethodPost
	q.probe = isModels && r.Method == http.MethodGet && rest != "" && !strings.ContainsAny(rest, ":/")
	switch {
	case q.probe:
		q.model = rest
	case q.generate:
		q.model = model
	}
	return q
}

// reply chooses the answer to q. u.mu is held; it is let go while
// Options.Respond runs, which may call back into u.
func (u *Upstream) reply(q request) Reply {
	switch {
	case q.queryKey:
		return Reply{Status: http.StatusBadRequest, Body: []byte(`{"error":{"code":400,"message":"geminifake: API keys must not be sent in the URL (?key=); use the x-goog-api-key header.","status":"INVALID_ARGUMENT"}}`)}
	case !q.generate && !q.probe:
		return FixtureReply("404_model_not_found")
	case q.key == "":
		return FixtureReply("401_unauthenticated")
	case u.models[q.model].Body != nil:
		return u.models[q.model]
	case q.probe:
		if a, ok := u.always[q.key]; ok && slices.Contains([]int{400, 401, 402, 403}, a.Status) {
			return a
		}
		return Reply{Status: http.StatusOK, Body: fmt.Appendf(nil, `{"name":"models/%s"}`, q.model)}
	case !json.Valid(q.body):
		return FixtureReply("400_invalid_argument")
	}
	reply, scripted := u.next(q.key)
	if !scripted {
		u.mu.Unlock()
		reply = u.opts.Respond(q.key, q.body)
		u.mu.Lock()
	}
	reply.Delay += u.opts.Latency
	return reply
}

// next pops key's script, or returns its Always reply; false if neither
// exists. u.mu is held.
func (u *Upstream) next(key string) (Reply, bool) {
	if q := u.scripts[key]; len(q) > 0 {
		u.scripts[key] = q[1:]
		return q[0], true
	}
	a, ok := u.always[key]
	return a, ok
}

func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Simulation is how a simulated Gemini answers (see Simulated).
type Simulation struct {
	// Latency is added to every generateContent answer.
	Latency time.Duration
	// FailureRate is the share of calls answered with Google's 503 body.
	FailureRate float64
	// RateLimitRate is the share of calls answered with Google's 429
	// per-minute body, which cools the key's project.
	RateLimitRate float64
	// Text makes the answer's text from the request body; nil answers
	// {"simulated":true}.
	Text func(req []byte) string
}

// Simulated returns Options for a simulator: each call waits s.Latency,
// then answers 503_overloaded with probability s.FailureRate,
// 429_per_minute with probability s.RateLimitRate, else OK(s.Text(req)).
func Simulated(s Simulation) Options {
	return Options{
		Latency: s.Latency,
		Respond: func(_ string, req []byte) Reply {
			switch r := rand.Float64(); {
			case r < s.FailureRate:
				return FixtureReply("503_overloaded")
			case r < s.FailureRate+s.RateLimitRate:
				return FixtureReply("429_per_minute")
			case s.Text == nil:
				return OK(`{"simulated":true}`)
			}
			return OK(s.Text(req))
		},
	}
}
