package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
)

const dashPass = "correct horse battery staple"

func basic(user, pass string) map[string]string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return map[string]string{"Authorization": r.Header.Get("Authorization")}
}

func TestDashboardNeedsPassword(t *testing.T) {
	t.Parallel()
	s, _, _ := opsServer(t, Options{})
	for _, p := range []string{"/monitoring/", "/monitoring/api/queues", "/keys"} {
		w := opsDo(t, s, http.MethodGet, p, basic("admin", ""), "")
		opsError(t, p+" without DASHBOARD_PASSWORD", w, http.StatusNotFound, CodeNotFound)
	}
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	s, rdb, logs := opsServer(t, Options{Dashboard: Dashboard{Password: dashPass}, Tokens: []string{tokA}})
	// A job, so that asynqmon has a queue to show and pause.
	if w := opsDo(t, s, http.MethodPost, "/api/analyze-character", with(jsonCT, "Authorization", "Bearer "+tokA), jobBody); w.Code != http.StatusAccepted {
		t.Fatalf("POST job: %d %s", w.Code, w.Body)
	}
	for _, auth := range []map[string]string{
		nil,
		basic("admin", "wrong"),
		basic("admin", dashPass[:len(dashPass)-1]),
		basic("root", dashPass),
		basic("", dashPass),
		{"Authorization": "Bearer " + tokA}, // an API token is not the dashboard's password
	} {
		for _, p := range []string{"/monitoring/", "/monitoring/api/queues", "/monitoring/api/redis_info", "/keys"} {
			w := opsDo(t, s, http.MethodGet, p, auth, "")
			opsError(t, p, w, http.StatusUnauthorized, CodeUnauthorized)
			if a := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(a, "Basic realm=") {
				t.Errorf("%s: WWW-Authenticate %q", p, a)
			}
		}
	}
	ok := basic("admin", dashPass)
	w := opsDo(t, s, http.MethodGet, "/monitoring/", ok, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "<html") {
		t.Errorf("GET /monitoring/: %d %.200s", w.Code, w.Body)
	}
	w = opsDo(t, s, http.MethodGet, "/monitoring/api/queues", ok, "")
	var queues struct {
		Queues []struct {
			Queue  string `json:"queue"`
			Size   int    `json:"size"`
			Paused bool   `json:"paused"`
		} `json:"queues"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &queues); err != nil || w.Code != http.StatusOK ||
		len(queues.Queues) != 1 || queues.Queues[0].Queue != tasks.Queue || queues.Queues[0].Size != 1 {
		t.Errorf("GET /monitoring/api/queues: %d %s (%v)", w.Code, w.Body, err)
	}

	// Read-only (the default): every write is refused, by us before
	// asynqmon, and by asynqmon's own ReadOnly when asked directly.
	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/monitoring/api/queues/" + tasks.Queue + ":pause"},
		{http.MethodDelete, "/monitoring/api/queues/" + tasks.Queue + "/pending_tasks:delete_all"},
		{http.MethodDelete, "/monitoring/api/queues/" + tasks.Queue},
		{http.MethodPut, "/monitoring/"},
	} {
		w := opsDo(t, s, r.method, r.path, ok, "")
		opsError(t, r.method+" "+r.path+" read-only", w, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
		if !strings.Contains(w.Body.String(), "DASHBOARD_READONLY=false") {
			t.Errorf("the refusal does not say how to allow writes: %s", w.Body)
		}
	}
	direct := httptest.NewRecorder()
	s.dashboard.ServeHTTP(direct, httptest.NewRequest(http.MethodPost, "/monitoring/api/queues/"+tasks.Queue+":pause", nil))
	if direct.Code != http.StatusMethodNotAllowed {
		t.Errorf("asynqmon's own ReadOnly let a pause through: %d %s", direct.Code, direct.Body)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if q, err := insp.GetQueueInfo(tasks.Queue); err != nil || q.Paused || q.Size != 1 {
		t.Errorf("read-only dashboard changed the queue: %+v %v", q, err)
	}
	if strings.Contains(logs.String(), dashPass) {
		t.Errorf("the dashboard password is in the log")
	}
}

func TestDashboardWritable(t *testing.T) {
	t.Parallel()
	s, rdb, _ := opsServer(t, Options{Dashboard: Dashboard{Password: dashPass, User: "ops", Writable: true}})
	if w := opsDo(t, s, http.MethodPost, "/api/analyze-character", jsonCT, jobBody); w.Code != http.StatusAccepted {
		t.Fatalf("POST job: %d %s", w.Code, w.Body)
	}
	w := opsDo(t, s, http.MethodPost, "/monitoring/api/queues/"+tasks.Queue+":pause", basic("admin", dashPass), "")
	opsError(t, "the default user when DASHBOARD_USER is ops", w, http.StatusUnauthorized, CodeUnauthorized)
	w = opsDo(t, s, http.MethodPost, "/monitoring/api/queues/"+tasks.Queue+":pause", basic("ops", dashPass), "")
	if w.Code/100 != 2 {
		t.Fatalf("pause on a writable dashboard: %d %s", w.Code, w.Body)
	}
	if q, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(tasks.Queue); err != nil || !q.Paused {
		t.Errorf("queue not paused: %+v %v", q, err)
	}
}

func TestKeysPage(t *testing.T) {
	t.Parallel()
	until := time.Now().Add(90 * time.Second)
	keys := &stubKeys{statuses: []keyring.Status{
		{Index: 1, Fingerprint: "25fe7c72dca8", Project: "proj-a", State: keyring.StateReady, Picks: 12, Successes: 11, Failures: map[string]int64{"unavailable": 1}},
		{Index: 2, Fingerprint: "f19f592d4bef", Project: "proj-b", State: keyring.StateCooling, Until: &until,
			Reason: `429 quota <script>alert("x")</script>`, Picks: 7, Failures: map[string]int64{"rate_limited": 5, "unavailable": 2}},
	}}
	s, _, _ := opsServer(t, Options{Keys: keys, Dashboard: Dashboard{Password: dashPass}})
	w := opsDo(t, s, http.MethodGet, "/keys", basic("admin", dashPass), "")
	body := w.Body.String()
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /keys: %d %v\n%s", w.Code, w.Header(), body)
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		"25fe7c72dca8", "f19f592d4bef", "proj-b", `class="cooling"`, "rate_limited 5, unavailable 2",
		"&lt;script&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("keys page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<script>") {
		t.Errorf("keys page does not escape a reason:\n%s", body)
	}
	w = opsDo(t, s, http.MethodPost, "/keys", basic("admin", dashPass), "")
	opsError(t, "POST /keys", w, http.StatusMethodNotAllowed, CodeMethodNotAllowed)

	keys.err = errors.New("dial tcp: connection refused")
	w = opsDo(t, s, http.MethodGet, "/keys", basic("admin", dashPass), "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "unreachable") || strings.Contains(w.Body.String(), "dial tcp") {
		t.Errorf("keys page with Redis down: %d\n%s", w.Code, w.Body)
	}

	nokeys, _, _ := opsServer(t, Options{Dashboard: Dashboard{Password: dashPass}})
	w = opsDo(t, nokeys, http.MethodGet, "/keys", basic("admin", dashPass), "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "no view of the key pool") {
		t.Errorf("keys page without a KeyAdmin: %d\n%s", w.Code, w.Body)
	}
}
