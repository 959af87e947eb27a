package geminifake

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func Start(tb testing.TB, opts Options) (*Upstream, string) {
	tb.Helper()
	u := New(opts)
	srv := httptest.NewServer(u)
	tb.Cleanup(srv.Close)
	return u, srv.URL
}

func post(t *testing.T, url, key string, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("x-goog-api-key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestFixtures(t *testing.T) {
	names := FixtureNames()
	if len(names) < 20 || Fixture("nope") != nil {
		t.Fatalf("names %v", names)
	}
	if r := FixtureReply("429_per_day"); r.Status != 429 || !bytes.Contains(r.Body, []byte("PerDay")) {
		t.Errorf("429_per_day: %d %s", r.Status, r.Body)
	}
	if r := FixtureReply("nope"); r.Status != 500 || !bytes.Contains(r.Body, []byte("unknown fixture")) {
		t.Errorf("unknown: %+v", r)
	}
}

func TestRouting(t *testing.T) {
	calls := 0
	u, base := Start(t, Options{Respond: func(key string, req []byte) Reply {
		calls++
		return OK("default for " + key)
	}})
	gen := base + "/v1beta/models/m1:generateContent"
	u.Script("k", FixtureReply("503_overloaded"), FixtureReply("429_no_details"))
	u.Always("k", FixtureReply("500_internal"))
	for i, want := range []int{503, 429, 500, 500} {
		if st, _ := post(t, gen, "k", `{}`); st != want {
			t.Errorf("call %d: %d, want %d", i, st, want)
		}
	}
	if st, b := post(t, gen, "other", `{}`); st != 200 || !bytes.Contains(b, []byte("default for other")) || calls != 1 {
		t.Errorf("Respond: %d %s (%d calls)", st, b, calls)
	}
	for _, tc := range []struct {
		url, key, body string
		want           int
	}{
		{gen, "", `{}`, 401},
		{gen + "?key=secret", "", `{}`, 400},
		{gen, "k2", `{not json`, 400},
		{base + "/v1/other", "k2", `{}`, 404},
	} {
		if st, _ := post(t, tc.url, tc.key, tc.body); st != tc.want {
			t.Errorf("%s key=%q: %d, want %d", tc.url, tc.key, st, tc.want)
		}
	}
	// Probe: 200 unless the key always answers a key error.
	u.Always("bad", FixtureReply("403_leaked"))
	for key, want := range map[string]int{"k": 200, "bad": 403} {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1beta/models/m1", nil)
		req.Header.Set("x-goog-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("probe %s: %d, want %d", key, resp.StatusCode, want)
		}
	}
	got := u.Calls()
	if len(got) != 11 || got[0].Model != "m1" || got[0].Status != 503 || got[6].Query != "key=secret" || got[6].Key != "secret" || got[8].Model != "" {
		t.Errorf("calls = %+v", got)
	}
	u.Reset()
	if len(u.Calls()) != 0 {
		t.Error("Reset kept calls")
	}
}

func TestDelayStopsOnCancel(t *testing.T) {
	u, base := Start(t, Options{Latency: 10 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1beta/models/m:generateContent", strings.NewReader(`{}`))
	req.Header.Set("x-goog-api-key", "k")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("want an error")
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && len(u.Calls()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if c := u.Calls(); len(c) != 1 || c[0].Status != 0 {
		t.Errorf("calls = %+v", c)
	}
}

func TestSimulated(t *testing.T) {
	_, base := Start(t, Simulated(Simulation{FailureRate: 1}))
	if st, _ := post(t, base+"/v1beta/models/m:generateContent", "k", `{}`); st != 503 {
		t.Errorf("failRate 1: %d", st)
	}
	_, base = Start(t, Simulated(Simulation{Text: func([]byte) string { return "hi" }}))
	if st, b := post(t, base+"/v1beta/models/m:generateContent", "k", `{}`); st != 200 || !bytes.Contains(b, []byte(`"hi"`)) {
		t.Errorf("failRate 0: %d %s", st, b)
	}
}
