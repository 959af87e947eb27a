package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
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
		"25fe7c72dca8", "f19f592d4bef", "proj-b", `class="cooling"`, `title="rate_limited 5, unavailable 2"`,
		`data-until="` + strconv.FormatInt(until.UnixMilli(), 10) + `"`, // a live countdown
		`<td class="n">100.0%</td>`,                                     // 11 successes, no key fault (a 503 is not the key's)
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

// The console's enable/disable buttons: only when writable, only with the
// page's CSRF token, never from another site; a done action sends the
// operator back to the page they were on.
func TestKeysPageActions(t *testing.T) {
	t.Parallel()
	keys := &stubKeys{statuses: []keyring.Status{
		{Index: 1, Fingerprint: "25fe7c72dca8", Project: "p", State: keyring.StateReady, Failures: map[string]int64{}},
		{Index: 2, Fingerprint: "f19f592d4bef", Project: "p", State: keyring.StateDisabled, Failures: map[string]int64{}},
	}}
	auth := basic("admin", dashPass)
	form := func(h map[string]string) map[string]string {
		out := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		for k, v := range auth {
			out[k] = v
		}
		for k, v := range h {
			out[k] = v
		}
		return out
	}
	ro, _, _ := opsServer(t, Options{Keys: keys, Dashboard: Dashboard{Password: dashPass}})
	if body := opsDo(t, ro, http.MethodGet, "/keys", auth, "").Body.String(); strings.Contains(body, "<button type=\"submit\">disable") {
		t.Error("a read-only console shows buttons")
	}
	rw, _, _ := opsServer(t, Options{Keys: keys, Dashboard: Dashboard{Password: dashPass, Writable: true}})
	page := opsDo(t, rw, http.MethodGet, "/keys?project=p", auth, "").Body.String()
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `action="/keys/25fe7c72dca8/disable"`) || !strings.Contains(page, `action="/keys/f19f592d4bef/enable"`) {
		t.Fatalf("a writable console lacks its forms:\n%s", page)
	}
	good := "csrf=" + m[1] + "&back=%2Fkeys%3Fproject%3Dp"
	for _, tc := range []struct {
		what   string
		srv    *Server
		header map[string]string
		body   string
		status int
	}{
		{"read-only", ro, form(nil), good, http.StatusForbidden},
		{"no token", rw, form(nil), "back=%2Fkeys", http.StatusForbidden},
		{"wrong token", rw, form(nil), "csrf=" + strings.Repeat("0", 64), http.StatusForbidden},
		{"cross-site", rw, form(map[string]string{"Sec-Fetch-Site": "cross-site"}), good, http.StatusForbidden},
		{"other origin", rw, form(map[string]string{"Origin": "https://evil.example"}), good, http.StatusForbidden},
		{"no basic auth", rw, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, good, http.StatusUnauthorized},
	} {
		if w := opsDo(t, tc.srv, http.MethodPost, "/keys/25fe7c72dca8/disable", tc.header, tc.body); w.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.what, w.Code, w.Body, tc.status)
		}
	}
	if c := keys.calls(); len(c) != 0 {
		t.Fatalf("refused posts reached the pool: %v", c)
	}
	w := opsDo(t, rw, http.MethodPost, "/keys/25fe7c72dca8/disable", form(map[string]string{"Sec-Fetch-Site": "same-origin"}), good)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/keys?project=p" {
		t.Errorf("good post: %d, Location %q", w.Code, w.Header().Get("Location"))
	}
	if c := keys.calls(); len(c) != 1 || c[0] != "disable 25fe7c72dca8" {
		t.Errorf("calls %v, want one disable", c)
	}
}
