package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/keyq/keyq/keyring"
)

const (
	tokA = "tok-A-3f1e2d4c5b6a79880fedcba9"
	tokB = "tok-B-0a1b2c3d4e5f60718293a4b5"
)

func TestBearerAuth(t *testing.T) {
	t.Parallel()
	keys := &stubKeys{}
	s, _, logs := opsServer(t, Options{Tokens: []string{" " + tokA, "", tokB + " "}, Keys: keys})
	for _, c := range []struct {
		name, auth string
	}{
		{"missing", ""},
		{"empty bearer", "Bearer "},
		{"wrong", "Bearer nope"},
		{"almost: one char short", "Bearer " + tokA[:len(tokA)-1]},
		{"almost: one char more", "Bearer " + tokA + "0"},
		{"almost: one char changed", "Bearer " + tokA[:len(tokA)-1] + "X"},
		{"almost: other case", "Bearer " + strings.ToUpper(tokA)},
		{"both tokens", "Bearer " + tokA + tokB},
		{"basic scheme", "Basic " + tokA},
		{"no scheme", tokA},
	} {
		for _, r := range []struct{ method, path string }{
			{http.MethodPost, "/api/analyze-character"},
			{http.MethodGet, "/api/jobs/0123456789abcdef0123456789abcdef"},
			{http.MethodGet, "/api/keys"},
			{http.MethodPost, "/api/keys/ab12/disable"},
		} {
			w := opsDo(t, s, r.method, r.path, with(jsonCT, "Authorization", c.auth), jobBody)
			opsError(t, c.name+" "+r.path, w, http.StatusUnauthorized, CodeUnauthorized)
			if a := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(a, "Bearer realm=") {
				t.Errorf("%s %s: WWW-Authenticate %q", c.name, r.path, a)
			}
		}
	}
	if len(keys.calls()) != 0 {
		t.Errorf("refused requests reached the key pool: %v", keys.calls())
	}

	for _, tok := range []string{tokA, tokB} {
		if w := opsDo(t, s, http.MethodPost, "/api/analyze-character", with(jsonCT, "Authorization", "Bearer "+tok), jobBody); w.Code != http.StatusAccepted {
			t.Errorf("POST with a good token: %d %s", w.Code, w.Body)
		}
		if w := opsDo(t, s, http.MethodGet, "/api/keys", map[string]string{"Authorization": "bearer " + tok}, ""); w.Code != http.StatusOK {
			t.Errorf("GET /api/keys with a good token (scheme in lower case): %d %s", w.Code, w.Body)
		}
		if w := opsDo(t, s, http.MethodPost, "/api/keys/ab12/disable", map[string]string{"Authorization": "Bearer " + tok}, ""); w.Code != http.StatusOK {
			t.Errorf("admin with a good token: %d %s", w.Code, w.Body)
		}
	}
	// Probes, scrapers and the description stay open.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/api/openapi.yaml"} {
		if w := opsDo(t, s, http.MethodGet, p, nil, ""); w.Code != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s", p, w.Code, w.Body)
		}
	}
	if strings.Contains(logs.String(), "tok-") {
		t.Errorf("a token is in the log:\n%s", logs)
	}
}

func TestNoTokensOpenButAdminRefused(t *testing.T) {
	t.Parallel()
	keys := &stubKeys{}
	s, _, _ := opsServer(t, Options{Keys: keys})
	if w := opsDo(t, s, http.MethodPost, "/api/analyze-character", jsonCT, jobBody); w.Code != http.StatusAccepted {
		t.Errorf("open API refused a job: %d %s", w.Code, w.Body)
	}
	if w := opsDo(t, s, http.MethodGet, "/api/keys", nil, ""); w.Code != http.StatusOK {
		t.Errorf("open API refused GET /api/keys: %d %s", w.Code, w.Body)
	}
	for _, a := range []string{"disable", "enable"} {
		for _, auth := range []string{"", "Bearer anything"} {
			w := opsDo(t, s, http.MethodPost, "/api/keys/ab12/"+a, map[string]string{"Authorization": auth}, "")
			opsError(t, "admin "+a+" without API_TOKENS", w, http.StatusForbidden, CodeForbidden)
			if !strings.Contains(w.Body.String(), "API_TOKENS") {
				t.Errorf("the refusal does not say to set API_TOKENS: %s", w.Body)
			}
		}
	}
	if len(keys.calls()) != 0 {
		t.Errorf("admin actions ran without a token: %v", keys.calls())
	}
}

func TestSecretsMatch(t *testing.T) {
	s := newSecrets([]string{"alpha", " beta ", ""})
	if len(s) != 2 {
		t.Fatalf("%d secrets, want 2", len(s))
	}
	for in, want := range map[string]bool{"alpha": true, "beta": true, "": false, "alph": false, "alphaa": false, "Alpha": false, " beta ": false} {
		if got := s.match(in); got != want {
			t.Errorf("match(%q) = %v, want %v", in, got, want)
		}
	}
	if newSecrets(nil).match("") {
		t.Error("an empty set matches the empty string")
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	s, _, _ := opsServer(t, Options{Tokens: []string{tokA}, CORSOrigins: []string{app + "/", "http://localhost:5173"}})
	preflight := map[string]string{
		"Origin":                         app,
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "authorization, content-type",
	}
	// A preflight carries no token and must still pass.
	w := opsDo(t, s, http.MethodOptions, "/api/analyze-character", preflight, "")
	h := w.Header()
	if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Max-Age") == "" {
		t.Errorf("preflight: %d %v", w.Code, h)
	}
	w = opsDo(t, s, http.MethodOptions, "/api/analyze-character", with(preflight, "Origin", "https://evil.example"), "")
	opsError(t, "preflight from another origin", w, http.StatusForbidden, CodeForbidden)
	if v := w.Header().Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("another origin allowed: %q", v)
	}

	w = opsDo(t, s, http.MethodPost, "/api/analyze-character", with(jsonCT, "Origin", app, "Authorization", "Bearer "+tokA), jobBody)
	if w.Code != http.StatusAccepted || w.Header().Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "Location") || !strings.Contains(w.Header().Get("Vary"), "Origin") {
		t.Errorf("POST from the app: %d %v", w.Code, w.Header())
	}
	// A 401 carries CORS headers too, so the page can read why.
	w = opsDo(t, s, http.MethodPost, "/api/analyze-character", with(jsonCT, "Origin", app), jobBody)
	if w.Code != http.StatusUnauthorized || w.Header().Get("Access-Control-Allow-Origin") != app {
		t.Errorf("401 from the app: %d %v", w.Code, w.Header())
	}
	w = opsDo(t, s, http.MethodPost, "/api/analyze-character", with(jsonCT, "Origin", "https://evil.example", "Authorization", "Bearer "+tokA), jobBody)
	if w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another origin got CORS headers: %v", w.Header())
	}
	if w := opsDo(t, s, http.MethodGet, "/healthz", map[string]string{"Origin": app}, ""); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS outside /api/: %v", w.Header())
	}

	wildcard, _, _ := opsServer(t, Options{CORSOrigins: []string{"*"}})
	w = opsDo(t, wildcard, http.MethodOptions, "/api/jobs/x", with(preflight, "Origin", "https://whoever.example"), "")
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight with *: %d %v", w.Code, w.Header())
	}

	// Without API_CORS_ORIGINS there are no CORS headers at all.
	none, _, _ := opsServer(t, Options{})
	if w := opsDo(t, none, http.MethodGet, "/api/jobs/x", map[string]string{"Origin": app}, ""); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS without origins: %v", w.Header())
	}
}

func TestCORSBadOrigin(t *testing.T) {
	rdb := mustRedis(t)
	for _, o := range []string{"app.example.com", "https://app.example.com/path", "ftp://x", "https://user@x"} {
		if _, err := New(rdb, Options{CORSOrigins: []string{o}}); err == nil || !strings.Contains(err.Error(), "origin") {
			t.Errorf("origin %q: err %v", o, err)
		}
	}
}

// stubKeys is a KeyAdmin of one key, "ab12" unless statuses says
// otherwise, that records admin calls.
type stubKeys struct {
	statuses []keyring.Status
	err      error
	mu       sync.Mutex
	log      []string
}

func (k *stubKeys) calls() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.log...)
}

func (k *stubKeys) record(s string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.log = append(k.log, s)
}

func (k *stubKeys) Statuses(context.Context) ([]keyring.Status, error) {
	if k.err != nil {
		return nil, k.err
	}
	if k.statuses != nil {
		return k.statuses, nil
	}
	return []keyring.Status{{Index: 1, Fingerprint: "ab12", State: keyring.StateReady, Failures: map[string]int64{}}}, nil
}

func (k *stubKeys) Disable(_ context.Context, fp, _ string) error {
	k.record("disable " + fp)
	return nil
}
func (k *stubKeys) Enable(_ context.Context, fp string) error { k.record("enable " + fp); return nil }

func (k *stubKeys) Page(ctx context.Context, _ keyring.Query) (keyring.Page, error) {
	st, err := k.Statuses(ctx)
	return keyring.Page{Keys: st}, err
}

func (k *stubKeys) Summary(ctx context.Context) (keyring.Summary, error) {
	st, err := k.Statuses(ctx)
	return summaryOf(st), err
}

// summaryOf counts statuses as keyring's Summary would.
func summaryOf(st []keyring.Status) keyring.Summary {
	s := keyring.Summary{States: map[keyring.State]int{}}
	byProject := map[string]int{}
	for _, k := range st {
		s.Keys++
		s.States[k.State]++
		i, ok := byProject[k.Project]
		if !ok {
			i = len(s.Projects)
			byProject[k.Project] = i
			s.Projects = append(s.Projects, keyring.ProjectSummary{Project: k.Project, States: map[keyring.State]int{}})
		}
		s.Projects[i].Keys++
		s.Projects[i].States[k.State]++
	}
	return s
}
