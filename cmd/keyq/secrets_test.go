package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/internal/faketest"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
)

// secKeys have the shapes of real Gemini keys: two classic "AIzaSy" keys of
// 39 characters and one of the newer "AQ." keys, longer. EXAMPLE keeps
// secret scanners quiet.
var secKeys = []string{
	"AIzaSyEXAMPLEq7Zt3Lw9Xv2Hs5Yd8Fj1Gm4Np6",
	"AIzaSyEXAMPLEb0Tc3Ue5Wf7Xh9Yi2Kj4Lk6Mn8",
	"AQ.Ab8RN6EXAMPLEkq7Zt3Lw9Xv2Hs5Yd8Fj1Gm4Np6Rb0Tc3Ue5Wf7Xh9Yi2Kj4",
}

const (
	secTokens    = "tok-EXAMPLE-secrets-aaaaaaaaaaaa,tok-EXAMPLE-secrets-bbbbbbbbbbbb"
	secToken     = "tok-EXAMPLE-secrets-aaaaaaaaaaaa"
	secDashPass  = "dash-EXAMPLE-secrets-password"
	secModelPool = "gemini-2.5-flash"
)

// secMarker finds the reply a job asked for in the prompt the worker sent
// upstream: every job is named "Fixture[<reply>]".
var secMarker = regexp.MustCompile(`Fixture\[([A-Za-z0-9_]+)\]`)

// secEchoReplies answer with the key being used inside the error body, as
// Google does for a suspended consumer, and as proxies and broken upstreams
// may: in a JSON message, an ErrorInfo, an HTML page, a 200 that is not
// JSON, a truncated body, a 429.
func secEchoReplies() map[string]func(key string) geminifake.Reply {
	jsonErr := func(status int, canonical, message, reason string) func(string) geminifake.Reply {
		return func(k string) geminifake.Reply {
			m := strings.ReplaceAll(message, "KEY", k)
			return geminifake.Reply{Status: status, Body: fmt.Appendf(nil,
				`{"error":{"code":%d,"message":%q,"status":%q,"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":%q,"domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com","consumer":"api_key:%s"}}]}}`,
				status, m, canonical, reason, k)}
		}
	}
	return map[string]func(string) geminifake.Reply{
		// Google's own shape (see fixtures/403_consumer_suspended.json, whose
		// key is already REDACTED there), with the real key.
		"echo_403_consumer_suspended": jsonErr(403, "PERMISSION_DENIED", "Permission denied: Consumer 'api_key:KEY' has been suspended.", "CONSUMER_SUSPENDED"),
		"echo_400_api_key_invalid":    jsonErr(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key. (KEY)", "API_KEY_INVALID"),
		"echo_401_credentials":        jsonErr(401, "UNAUTHENTICATED", "Request had invalid authentication credentials: x-goog-api-key=KEY", "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
		"echo_403_leaked":             jsonErr(403, "PERMISSION_DENIED", "Your API key KEY was reported as leaked. Please use another API key.", "API_KEY_SERVICE_BLOCKED"),
		"echo_429_quota":              jsonErr(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Generate Content API requests per minute' of consumer 'api_key:KEY'.", "RATE_LIMIT_EXCEEDED"),
		"echo_502_html": func(k string) geminifake.Reply {
			return geminifake.Reply{Status: 502, Body: fmt.Appendf(nil,
				"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>upstream https://generativelanguage.googleapis.com/v1beta/models/x:generateContent?key=%s failed for %s</p></body></html>", k, k)}
		},
		"echo_200_not_json": func(k string) geminifake.Reply {
			return geminifake.Reply{Status: 200, Body: fmt.Appendf(nil, "proxy: request with x-goog-api-key %s refused by policy", k)}
		},
		// A long proxy text whose 200-character excerpt ends inside the key.
		"echo_200_long_not_json": func(k string) geminifake.Reply {
			prefix := "proxy: the request was refused by the egress policy of this network; quote this credential to your administrator: "
			prefix += strings.Repeat("x", 180-len(prefix)-1) + " "
			return geminifake.Reply{Status: 200, Body: []byte(prefix + k + " (end)")}
		},
		"echo_500_truncated": func(k string) geminifake.Reply {
			return geminifake.Reply{Status: 500, Body: fmt.Appendf(nil, `{"error":{"code":500,"message":"Internal error encountered for key %s while`, k)}
		},
	}
}

// secReplies is every reply of the run: each fixture in
// gemini/geminifake/fixtures (== ../shared/fixtures/gemini), with the REDACTED
// placeholder some carry replaced by the key, then the echoing ones.
func secReplies() (names []string, replies map[string]func(key string) geminifake.Reply) {
	replies = secEchoReplies()
	for _, f := range geminifake.FixtureNames() {
		r := geminifake.FixtureReply(f)
		replies[f] = func(k string) geminifake.Reply {
			return geminifake.Reply{Status: r.Status, Body: []byte(strings.ReplaceAll(string(r.Body), "REDACTED", k))}
		}
		names = append(names, f)
	}
	for n := range secEchoReplies() {
		names = append(names, n)
	}
	slices.Sort(names[len(geminifake.FixtureNames()):])
	return names, replies
}

// secResetPool forgets the pool's key states (cooldowns, disables, pause,
// storm) but keeps its members, so that each job meets three usable keys
// and /api/keys still lists them.
func secResetPool(t *testing.T, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "keyq:{*", 100).Iterator()
	for iter.Next(ctx) {
		if k := iter.Val(); !strings.HasSuffix(k, ":members") && !strings.HasSuffix(k, ":rr") {
			if err := rdb.Del(ctx, k).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

type secClient struct {
	t    *testing.T
	base string
}

// do sends a request with auth ("bearer" or "basic" or "") and returns the
// status and body.
func (c secClient) do(method, path, auth, body string) (int, string) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch auth {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+secToken)
	case "basic":
		req.SetBasicAuth("admin", secDashPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (c secClient) get(path, auth string) string {
	c.t.Helper()
	code, body := c.do(http.MethodGet, path, auth, "")
	if code != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return body
}

func (c secClient) post(name string) string {
	c.t.Helper()
	code, body := c.do(http.MethodPost, "/api/analyze-character", "bearer",
		fmt.Sprintf(`{"name":%q,"description":"A test character."}`, name))
	var acc struct{ ID string }
	if err := json.Unmarshal([]byte(body), &acc); err != nil || code != http.StatusAccepted || acc.ID == "" {
		c.t.Fatalf("POST %s: %d %s", name, code, body)
	}
	return acc.ID
}

type secJob struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  *struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
}

// wait polls the job until its status is one of want.
func (c secClient) wait(id string, want ...string) secJob {
	c.t.Helper()
	var j secJob
	testutil.Eventually(c.t, 30*time.Second, "job "+id+" to reach "+strings.Join(want, " or "), func() bool {
		if err := json.Unmarshal([]byte(c.get("/api/jobs/"+id, "bearer")), &j); err != nil {
			c.t.Fatal(err)
		}
		return slices.Contains(want, j.Status)
	})
	return j
}

var secMetricsLine = regexp.MustCompile(`worker metrics on http://([^/]+)/metrics`)

// secStart starts one keyq command with its own context and waits until it
// is up: a worker until it has logged its metrics address and "worker
// ready", the API until it listens. stop ends it and checks its exit.
func secStart(t *testing.T, name string) (p *proc, addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p = startCmd(t, ctx, name)
	exited := false
	stop = func() {
		cancel()
		if exited {
			return
		}
		exited = true
		if code := <-p.done; code != 0 {
			t.Errorf("keyq %s exited %d:\n%s", name, code, p.logs.String())
		}
	}
	t.Cleanup(stop)
	up := secMetricsLine
	if name == "api" {
		up = listening
	}
	testutil.Eventually(t, 10*time.Second, "keyq "+name+" to start", func() bool {
		select {
		case code := <-p.done:
			exited = true
			t.Fatalf("keyq %s exited %d:\n%s", name, code, p.logs.String())
		default:
		}
		if m := up.FindStringSubmatch(p.logs.String()); m != nil {
			addr = m[1]
		}
		return addr != "" && (name == "api" || strings.Contains(p.logs.String(), "worker ready"))
	})
	return p, addr, stop
}

// A run of keyq api and two keyq workers through every fixture, several
// of which echo the key in use, and through a closed upstream port; then
// every surface that shows text is read and searched for each key and any
// 12-character piece of one.
func TestSecretsNeverLeakEndToEnd(t *testing.T) {
	for _, k := range secKeys {
		if len(k) < 39 {
			t.Fatalf("key %d characters: too short to be realistic", len(k))
		}
	}
	rdb, url := redistest.Open(t)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	names, replies := secReplies()
	up, base := faketest.Start(t, geminifake.Options{Respond: func(key string, req []byte) geminifake.Reply {
		m := secMarker.FindSubmatch(req)
		if m == nil {
			return geminifake.Reply{Status: 500, Body: []byte(`{"error":{"code":500,"message":"test: no Fixture[...] in the prompt","status":"INTERNAL"}}`)}
		}
		f, ok := replies[string(m[1])]
		if !ok {
			return geminifake.FixtureReply("no such fixture " + string(m[1]))
		}
		return f(key)
	}})
	for k, v := range map[string]string{
		"REDIS_URL":           url,
		"GEMINI_API_KEY":      strings.Join(secKeys, ","),
		"GEMINI_API_KEY_FILE": "",
		"GEMINI_MODEL":        secModelPool,
		"GEMINI_BASE_URL":     base,
		"GEMINI_RETRIES":      "2", // three attempts a run: one per key
		"GEMINI_RETRY_DELAY":  "1ms",
		"GEMINI_TIMEOUT":      "5s",
		"GEMINI_RPM":          "0",
		"GEMINI_RPD":          "0",
		"API_ADDR":            "127.0.0.1:0",
		"API_TOKENS":          secTokens,
		"API_CORS_ORIGINS":    "",
		"DASHBOARD_PASSWORD":  secDashPass,
		"DASHBOARD_USER":      "admin",
		"DASHBOARD_READONLY":  "true",
		"JOB_MAX_RETRY":       "0", // a failed run fails the job: one job per reply
		"JOB_RETRY_DELAY":     "1s",
		"WORKER_CONCURRENCY":  "2",
		"WORKER_METRICS_ADDR": "127.0.0.1:0",
		"LOG_LEVEL":           "debug",
		"LOG_FORMAT":          "text",
		"METRICS_PER_KEY":     "true", // the widest surface to scan
	} {
		t.Setenv(k, v)
	}

	apiP, apiAddr, stopAPI := secStart(t, "api")
	c := secClient{t: t, base: "http://" + apiAddr}
	wA, metricsA, stopA := secStart(t, "worker")

	// Phase 1: one job per reply, each meeting a fresh pool.
	jobs := map[string]string{} // job id -> what it is
	final := map[string]string{}
	for _, n := range names {
		secResetPool(t, rdb)
		id := c.post("Fixture[" + n + "]")
		jobs[id] = n
		j := c.wait(id, "succeeded", "failed", "retrying")
		if j.Status == "retrying" {
			// Waiting for a key (a 429 storm paused the pool): archive it so
			// it cannot run again in a later job's pool state.
			testutil.Eventually(t, 10*time.Second, "archive "+id, func() bool {
				err := insp.ArchiveTask(tasks.Queue, id)
				info, ierr := insp.GetTaskInfo(tasks.Queue, id)
				return err == nil || ierr == nil && info.State == asynq.TaskStateArchived
			})
			j = c.wait(id, "failed")
		}
		final[n] = j.Status
	}
	if final["200_ok_json"] != "succeeded" {
		t.Errorf("200_ok_json: job %s, want succeeded", final["200_ok_json"])
	}
	for _, n := range names {
		if strings.HasPrefix(n, "echo_") && final[n] != "failed" {
			t.Errorf("%s: job %s, want failed", n, final[n])
		}
	}
	t.Logf("phase 1 outcomes: %v", final)

	// A job left waiting for a key: every key disabled by 401s, then a job
	// that finds none (stays in asynq's retry set for ~10 min, the probe).
	secResetPool(t, rdb)
	id := c.post("Fixture[echo_401_credentials] disable all")
	jobs[id] = "disable all"
	c.wait(id, "failed")
	waiting := c.post("Fixture[200_ok_json] waiting")
	jobs[waiting] = "waiting"
	if j := c.wait(waiting, "retrying"); j.Error == nil || j.Error.Class != "waiting_for_key" {
		t.Errorf("waiting job: %+v, want error class waiting_for_key", j)
	}

	// Every reply was served to at least one call.
	served := map[string]int{}
	for _, call := range up.Calls() {
		if m := secMarker.FindSubmatch(call.Body); m != nil && call.Status != 0 && slices.Contains(secKeys, call.Key) {
			served[string(m[1])]++
		}
	}
	for _, n := range names {
		if served[n] == 0 {
			t.Errorf("reply %s was never served (served: %v)", n, served)
		}
	}

	surfaces := []struct{ name, text string }{}
	add := func(name, text string) { surfaces = append(surfaces, struct{ name, text string }{name, text}) }
	add("dashboard /monitoring/api/servers (worker A up)", c.get("/monitoring/api/servers", "basic"))
	mA := secClient{t: t, base: "http://" + metricsA}.get("/metrics", "")
	add("worker A /metrics", mA)
	stopA()

	// Phase 2: a worker whose upstream is a closed port (connection
	// refused), logging JSON this time.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	t.Setenv("GEMINI_BASE_URL", "http://"+closed)
	t.Setenv("LOG_FORMAT", "json")
	secResetPool(t, rdb)
	wB, metricsB, stopB := secStart(t, "worker")
	refused := c.post("Fixture[refused]")
	jobs[refused] = "refused"
	if j := c.wait(refused, "failed"); j.Error == nil || j.Error.Class != "network" || !strings.Contains(j.Error.Message, "connection refused") {
		t.Errorf("job through a closed port: %+v, want class network and \"connection refused\"", j)
	}
	add("dashboard /monitoring/api/servers (worker B up)", c.get("/monitoring/api/servers", "basic"))
	mB := secClient{t: t, base: "http://" + metricsB}.get("/metrics", "")
	add("worker B /metrics", mB)
	stopB()

	// Phase 3: a job no worker takes.
	pending := c.post("Fixture[200_ok_json] pending")
	jobs[pending] = "pending"

	// Read every surface.
	add("api logs", apiP.logs.String())
	add("worker A logs", wA.logs.String())
	add("worker B logs", wB.logs.String())
	add("redis", testutil.DumpRedis(t, rdb))
	var jobJSON strings.Builder
	for id := range jobs {
		jobJSON.WriteString(c.get("/api/jobs/"+id, "bearer") + "\n")
	}
	add("GET /api/jobs/{id}", jobJSON.String())
	const dash = "/monitoring/api"
	for _, p := range []string{"/queues", "/queue_stats", "/queues/keyq", "/queues/keyq/groups", "/redis_info", "/scheduler_entries"} {
		add("dashboard "+p, c.get(dash+p, "basic"))
	}
	lists := map[string]string{}
	for _, state := range []string{"active", "pending", "scheduled", "retry", "archived", "completed"} {
		p := dash + "/queues/" + tasks.Queue + "/" + state + "_tasks?page=1&size=1000"
		lists[state] = c.get(p, "basic")
		add("dashboard "+p, lists[state])
	}
	var details strings.Builder
	for id := range jobs {
		details.WriteString(c.get(dash+"/queues/"+tasks.Queue+"/tasks/"+id, "basic") + "\n")
	}
	add("dashboard task details", details.String())
	add("GET /api/keys", c.get("/api/keys", "bearer"))
	add("GET /keys", c.get("/keys", "basic"))
	add("api /metrics", c.get("/metrics", ""))
	// Poll results after the API stops would not add anything: stop it so
	// that its shutdown lines are scanned too.
	stopAPI()
	surfaces[slices.IndexFunc(surfaces, func(s struct{ name, text string }) bool { return s.name == "api logs" })].text = apiP.logs.String()

	// Each surface was really read.
	fps := make([]string, len(secKeys))
	for i, k := range secKeys {
		fps[i] = keyring.Fingerprint(k)
	}
	var ids []string
	for id := range jobs {
		ids = append(ids, id)
	}
	text := map[string]string{}
	for _, s := range surfaces {
		text[s.name] = s.text
		t.Logf("scanned %-60s %7d bytes", s.name, len(s.text))
		if strings.TrimSpace(s.text) == "" || s.text == "null" {
			t.Errorf("surface %s is empty", s.name)
		}
	}
	must := func(surface string, subs ...string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(text[surface], s) {
				t.Errorf("%s lacks %q: the scan read too little", surface, s)
			}
		}
	}
	must("api logs", "Backend listening on", "202 POST /api/analyze-character", "200 GET /monitoring/api/queues")
	must("worker A logs", "Loaded 3 Gemini API keys", "[Gemini] Using API Key #3", "api_key:[redacted]", "(403)", "(502)", "(500)", "(429)", "(401)", "(400)")
	must("worker B logs", "Loaded 3 Gemini API keys", "connection refused", `"level":"WARN"`)
	must("redis", append([]string{"asynq:{keyq}", "keyq:{" + secModelPool + "}:members"}, ids...)...)
	must("GET /api/jobs/{id}", append([]string{`"succeeded"`, `"failed"`, `"retrying"`, `"queued"`, "connection refused", "[redacted]"}, ids...)...)
	must("GET /api/keys", fps...)
	must("GET /keys", fps...)
	must("api /metrics", append([]string{"keyq_http_requests_total", "keyq_key_picks_total"}, fps...)...)
	must("worker A /metrics", "keyq_upstream_request_duration_seconds", "keyq_jobs_total")
	must("worker B /metrics", `class="network"`)
	must("dashboard /queues", tasks.Queue)
	must("dashboard task details", ids...)
	must("dashboard /monitoring/api/servers (worker A up)", tasks.Queue)
	for n, s := range final {
		id := ""
		for i, what := range jobs {
			if what == n {
				id = i
			}
		}
		switch s {
		case "succeeded":
			must("dashboard "+dash+"/queues/keyq/completed_tasks?page=1&size=1000", id)
		case "failed":
			must("dashboard "+dash+"/queues/keyq/archived_tasks?page=1&size=1000", id)
		}
	}
	must("dashboard "+dash+"/queues/keyq/archived_tasks?page=1&size=1000", refused, "connection refused", "[redacted]")
	must("dashboard "+dash+"/queues/keyq/retry_tasks?page=1&size=1000", waiting, "waiting_for_key")
	must("dashboard "+dash+"/queues/keyq/pending_tasks?page=1&size=1000", pending)

	// And no key, nor any 12-character piece of one, anywhere.
	for _, s := range surfaces {
		if hits := testutil.FindSecrets(s.text, secKeys...); len(hits) > 0 {
			t.Errorf("LEAK in %s:\n  %s", s.name, strings.Join(hits, "\n  "))
		}
	}
}
