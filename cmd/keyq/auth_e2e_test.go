package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redistest"
	"github.com/keyq/keyq/internal/testutil"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
)

const (
	authTokA     = "tok-EXAMPLE-aaaaaaaaaaaaaaaa"
	authTokB     = "tok-EXAMPLE-bbbbbbbbbbbbbbbb"
	authDashUser = "admin"
	authDashPass = "dash-EXAMPLE-password-0123"
	authJobID    = "0123456789abcdef0123456789abcdef"
)

// authRoute is one entry of api's route table, read from api/routes.go.
type authRoute struct {
	pattern string
	access  string   // public, bearer, admin, operator
	methods []string // nil: the handler takes every method
}

// authRouteTable reads the route table from api/routes.go. The table is
// unexported (api.Server.routes), so the test parses its source rather
// than hard-code it: a route added there is tested here without an edit.
// The one pattern that is not a literal, the dashboard's, is computed from
// api.DashboardPath.
func authRouteTable(t *testing.T) []authRoute {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../../api/routes.go", nil, 0)
	if err != nil {
		t.Fatalf("read the route table: %v", err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "routes" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("api/routes.go has no routes(): update authRouteTable")
	}
	// Local method lists: get := []string{http.MethodGet, http.MethodHead}.
	lists := map[string][]string{}
	ast.Inspect(fn, func(n ast.Node) bool {
		as, ok := n.(*ast.AssignStmt)
		if !ok || len(as.Lhs) != len(as.Rhs) {
			return true
		}
		for i, l := range as.Lhs {
			id, ok1 := l.(*ast.Ident)
			cl, ok2 := as.Rhs[i].(*ast.CompositeLit)
			if !ok1 || !ok2 {
				continue
			}
			var ms []string
			for _, e := range cl.Elts {
				if sel, ok := e.(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "Method") {
					ms = append(ms, strings.ToUpper(strings.TrimPrefix(sel.Sel.Name, "Method")))
				}
			}
			if len(ms) > 0 {
				lists[id.Name] = ms
			}
		}
		return true
	})
	var rs []authRoute
	ast.Inspect(fn, func(n ast.Node) bool {
		cl, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		var r authRoute
		for _, e := range cl.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			k, _ := kv.Key.(*ast.Ident)
			if k == nil {
				continue
			}
			switch k.Name {
			case "pattern":
				switch v := kv.Value.(type) {
				case *ast.BasicLit:
					r.pattern, _ = strconv.Unquote(v.Value)
				case *ast.BinaryExpr: // s.dashboard.RootPath() + "/"
					if call, ok := v.X.(*ast.CallExpr); ok {
						if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "RootPath" {
							suffix, _ := strconv.Unquote(v.Y.(*ast.BasicLit).Value)
							r.pattern = api.DashboardPath + suffix
						}
					}
				}
				if r.pattern == "" {
					t.Fatalf("route pattern at %s is not understood: update authRouteTable", fset.Position(kv.Pos()))
				}
			case "access":
				r.access = kv.Value.(*ast.Ident).Name
			case "methods":
				id := kv.Value.(*ast.Ident)
				if r.methods = lists[id.Name]; r.methods == nil {
					t.Fatalf("route methods %s at %s are not understood", id.Name, fset.Position(kv.Pos()))
				}
			}
		}
		if r.pattern != "" {
			rs = append(rs, r)
		}
		return true
	})
	// The parser must have found at least the routes the issue names.
	want := map[string]string{
		"/api/analyze-character": "bearer", "/api/jobs/{id}": "bearer", "/api/keys": "bearer",
		"/api/keys/{fingerprint}/{action}": "admin", "/healthz": "public", "/readyz": "public",
		"/metrics": "public", api.DashboardPath + "/": "operator", "/keys": "operator",
	}
	for p, a := range want {
		i := slices.IndexFunc(rs, func(r authRoute) bool { return r.pattern == p })
		if i < 0 || rs[i].access != a {
			t.Fatalf("route table read from api/routes.go lacks %s (%s): got %+v", p, a, rs)
		}
	}
	return rs
}

// authPath makes a concrete path from a pattern.
func authPath(t *testing.T, pattern, fingerprint string) string {
	t.Helper()
	r := strings.NewReplacer("{id}", authJobID, "{fingerprint}", fingerprint, "{action}", "disable")
	p := r.Replace(pattern)
	if strings.ContainsAny(p, "{}") {
		t.Fatalf("route %s has a wildcard this test does not fill in: update authPath", pattern)
	}
	return p
}

type authResp struct {
	code int
	hdr  http.Header
	body string
}

func authDo(t *testing.T, method, url string, hdr http.Header, body string) authResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return authResp{resp.StatusCode, resp.Header, string(b)}
}

// refused401 checks a refusal: 401, a JSON error with code unauthorized
// (no body on HEAD), and a challenge of the scheme.
func refused401(t *testing.T, what, method string, r authResp, scheme string) {
	t.Helper()
	if r.code != http.StatusUnauthorized {
		t.Errorf("%s: %d %s, want 401", what, r.code, r.body)
		return
	}
	if !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), scheme+" ") {
		t.Errorf("%s: WWW-Authenticate %q, want a %s challenge", what, r.hdr.Get("WWW-Authenticate"), scheme)
	}
	if !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json") {
		t.Errorf("%s: Content-Type %q, want JSON", what, r.hdr.Get("Content-Type"))
	}
	if method == http.MethodHead {
		return
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error.Code != api.CodeUnauthorized || e.Error.Message == "" {
		t.Errorf("%s: body %q, want {\"error\":{\"code\":\"unauthorized\",...}}", what, r.body)
	}
}

func bearerHdr(v ...string) http.Header { return http.Header{"Authorization": v} }

func basicCreds(user, pass string) string { return basicRaw(user + ":" + pass) }

func basicRaw(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// With API_TOKENS and DASHBOARD_PASSWORD set, keyq api refuses every
// protected route of its route table to a missing, wrong or almost-right
// credential, keeps probes and scrapes open, and keeps its read-only
// dashboard from writing.
func TestAuthEndToEnd(t *testing.T) {
	rdb, url := redistest.Open(t)
	for k, v := range map[string]string{
		"REDIS_URL": url, "API_ADDR": "127.0.0.1:0", "API_CORS_ORIGINS": "",
		"API_TOKENS":         authTokA + "," + authTokB,
		"DASHBOARD_PASSWORD": authDashPass, "DASHBOARD_USER": authDashUser, "DASHBOARD_READONLY": "true",
		"GEMINI_MODEL": "gemini-2.5-flash", "LOG_LEVEL": "info", "LOG_FORMAT": "text",
	} {
		t.Setenv(k, v)
	}
	// A key pool as a worker would announce it, for the admin actions.
	ctx := context.Background()
	poolKey := "AIzaSyEXAMPLE-auth-test-key-000000000"
	ring, err := keyring.New(rdb, []keyring.Key{keyring.NewKey(1, poolKey)}, keyringOptions(GeminiEnv{}, "gemini-2.5-flash"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Announce(ctx); err != nil {
		t.Fatal(err)
	}
	fp := keyring.Fingerprint(poolKey)

	p, addr, _ := secStart(t, "api")
	base := "http://" + addr
	routes := authRouteTable(t)

	// Good credentials, for the positive controls.
	good := []http.Header{bearerHdr("Bearer " + authTokA), bearerHdr("Bearer " + authTokB)}
	// Credentials that must also be accepted, per RFC 6750 section 2.1
	// (credentials = "Bearer" 1*SP b64token) and RFC 9110 section 11.1 (the
	// auth-scheme is case-insensitive; an ABNF literal is too, RFC 5234):
	// the scheme in any case, and one or more spaces before the token.
	// Leading and trailing whitespace of a field value is not part of it
	// (RFC 9110 section 5.5).
	accepted := map[string]http.Header{
		"scheme lower case":  bearerHdr("bearer " + authTokA),
		"scheme upper case":  bearerHdr("BEARER " + authTokB),
		"two spaces (1*SP)":  bearerHdr("Bearer  " + authTokA),
		"trailing space OWS": bearerHdr("Bearer " + authTokA + " "),
	}
	// Credentials that must be refused. A token is compared byte for byte:
	// b64token is case-sensitive and nothing about it is normalized. The
	// token in the URL (RFC 6750 section 2.3, access_token) is a MAY this
	// API does not offer: it ends up in logs and proxies. Of two
	// Authorization headers (invalid, RFC 9110 section 5.3) the first is
	// read; a wrong first one is refused.
	almost := []struct {
		name string
		hdr  http.Header
		url  string
	}{
		{"missing", nil, ""},
		{"empty", bearerHdr(""), ""},
		{"scheme alone", bearerHdr("Bearer"), ""},
		{"scheme and space", bearerHdr("Bearer "), ""},
		{"wrong token", bearerHdr("Bearer nope"), ""},
		{"one char changed", bearerHdr("Bearer " + authTokA[:len(authTokA)-1] + "b"), ""},
		{"first char changed", bearerHdr("Bearer u" + authTokA[1:]), ""},
		{"prefix (one short)", bearerHdr("Bearer " + authTokA[:len(authTokA)-1]), ""},
		{"prefix (common part)", bearerHdr("Bearer tok-EXAMPLE-"), ""},
		{"token plus a char", bearerHdr("Bearer " + authTokA + "a"), ""},
		{"token plus a space and more", bearerHdr("Bearer " + authTokA + " x"), ""},
		{"upper case token", bearerHdr("Bearer " + strings.ToUpper(authTokA)), ""},
		{"other case token", bearerHdr("Bearer tok-example-aaaaaaaaaaaaaaaa"), ""},
		{"halves of both", bearerHdr("Bearer " + authTokA[:20] + authTokB[20:]), ""},
		{"both tokens joined", bearerHdr("Bearer " + authTokA + authTokB), ""},
		{"both tokens as a list", bearerHdr("Bearer " + authTokA + "," + authTokB), ""},
		{"token without scheme", bearerHdr(authTokA), ""},
		{"scheme glued", bearerHdr("Bearer" + authTokA), ""},
		{"scheme with colon", bearerHdr("Bearer: " + authTokA), ""},
		{"tab instead of SP", bearerHdr("Bearer\t" + authTokA), ""},
		{"Basic scheme", bearerHdr("Basic " + authTokA), ""},
		{"Token scheme", bearerHdr("Token " + authTokA), ""},
		{"dashboard basic auth", http.Header{"Authorization": {"Basic " + basicCreds(authDashUser, authDashPass)}}, ""},
		{"dashboard password as bearer", bearerHdr("Bearer " + authDashPass), ""},
		{"token in the query (access_token)", nil, "?access_token=" + authTokA},
		{"wrong then right header", bearerHdr("Bearer nope", "Bearer "+authTokA), ""},
		{"token in X-API-Key", http.Header{"X-Api-Key": {authTokA}}, ""},
	}

	bodyFor := func(path string) string {
		if path == "/api/analyze-character" {
			return `{"name":"Auth Test"}`
		}
		return ""
	}
	var protected int
	for _, r := range routes {
		path := authPath(t, r.pattern, fp)
		methods := r.methods
		if methods == nil {
			methods = []string{http.MethodGet, http.MethodPost, http.MethodDelete}
		}
		switch r.access {
		case "bearer", "admin":
			protected++
			for _, m := range methods {
				for _, c := range almost {
					what := m + " " + path + " with " + c.name
					refused401(t, what, m, authDo(t, m, base+path+c.url, c.hdr, bodyFor(path)), "Bearer")
				}
				for name, h := range accepted {
					if got := authDo(t, m, base+path, h, bodyFor(path)); got.code == 401 || got.code == 403 {
						t.Errorf("%s %s with %s: %d %s, want it accepted", m, path, name, got.code, got.body)
					}
				}
				for _, h := range good {
					if got := authDo(t, m, base+path, h, bodyFor(path)); got.code == 401 || got.code == 403 || got.code >= 500 {
						t.Errorf("%s %s with a good token: %d %s", m, path, got.code, got.body)
					}
				}
			}
		case "operator":
			protected++
			paths := []string{path}
			if strings.HasSuffix(r.pattern, "/") { // a subtree: its JSON API too
				paths = append(paths, path+"api/queues", path+"api/redis_info")
			}
			for _, pp := range paths {
				for _, m := range methods {
					for name, h := range map[string]http.Header{
						"no auth":            nil,
						"wrong password":     {"Authorization": {"Basic " + basicCreds(authDashUser, authDashPass+"x")}},
						"password prefix":    {"Authorization": {"Basic " + basicCreds(authDashUser, authDashPass[:len(authDashPass)-1])}},
						"password uppercase": {"Authorization": {"Basic " + basicCreds(authDashUser, strings.ToUpper(authDashPass))}},
						"wrong user":         {"Authorization": {"Basic " + basicCreds("root", authDashPass)}},
						"user other case":    {"Authorization": {"Basic " + basicCreds("Admin", authDashPass)}},
						"empty password":     {"Authorization": {"Basic " + basicCreds(authDashUser, "")}},
						"password as user":   {"Authorization": {"Basic " + basicCreds(authDashPass, authDashUser)}},
						"no colon":           {"Authorization": {"Basic " + basicRaw(authDashUser+authDashPass)}},
						"bearer token":       bearerHdr("Bearer " + authTokA),
						"password as bearer": bearerHdr("Bearer " + authDashPass),
					} {
						refused401(t, m+" "+pp+" with "+name, m, authDo(t, m, base+pp, h, ""), "Basic")
					}
				}
				if !slices.Contains(methods, http.MethodGet) {
					// A form action (the console's buttons): the right
					// login without the page's CSRF token is not enough.
					if got := authDo(t, http.MethodPost, base+pp, http.Header{"Authorization": {"Basic " + basicCreds(authDashUser, authDashPass)}}, ""); got.code != http.StatusForbidden {
						t.Errorf("POST %s with the dashboard's credentials but no CSRF token: %d %s", pp, got.code, got.body)
					}
					continue
				}
				if got := authDo(t, http.MethodGet, base+pp, http.Header{"Authorization": {"Basic " + basicCreds(authDashUser, authDashPass)}}, ""); got.code != http.StatusOK {
					t.Errorf("GET %s with the dashboard's credentials: %d %s", pp, got.code, got.body)
				}
			}
		case "public":
			for _, h := range []http.Header{nil, bearerHdr("Bearer nope"), {"Authorization": {"Basic " + basicCreds("x", "y")}}} {
				if got := authDo(t, http.MethodGet, base+path, h, ""); got.code != http.StatusOK {
					t.Errorf("GET %s (public) with %v: %d %s, want 200", path, h, got.code, got.body)
				}
			}
		default:
			t.Errorf("route %s: access %q unknown to this test", r.pattern, r.access)
		}
	}
	t.Logf("route table from api/routes.go: %d routes, %d protected: %+v", len(routes), protected, routes)
	if protected < 6 {
		t.Errorf("only %d protected routes tested", protected)
	}

	// Admin key actions: refused without a (good) token, and the key's
	// state does not move; with a token they work.
	keyState := func() keyring.State {
		var ks struct {
			Keys []keyring.Status `json:"keys"`
		}
		got := authDo(t, http.MethodGet, base+"/api/keys", good[0], "")
		if err := json.Unmarshal([]byte(got.body), &ks); err != nil || len(ks.Keys) != 1 {
			t.Fatalf("GET /api/keys: %d %s", got.code, got.body)
		}
		return ks.Keys[0].State
	}
	// The loop above disabled the key with the good and accepted tokens.
	if got := authDo(t, http.MethodPost, base+"/api/keys/"+fp+"/enable", good[1], ""); got.code != http.StatusOK {
		t.Fatalf("enable with a good token: %d %s", got.code, got.body)
	}
	if s := keyState(); s != keyring.StateReady {
		t.Fatalf("key state %s after enable", s)
	}
	for _, action := range []string{"disable", "enable"} {
		for _, c := range almost {
			refused401(t, "key "+action+" with "+c.name, http.MethodPost,
				authDo(t, http.MethodPost, base+"/api/keys/"+fp+"/"+action+c.url, c.hdr, ""), "Bearer")
		}
	}
	if s := keyState(); s != keyring.StateReady {
		t.Errorf("refused admin actions changed the key: state %s", s)
	}

	// The read-only dashboard refuses writes, with its credentials, and
	// nothing changes: the queue stays unpaused, the task stays.
	job := authDo(t, http.MethodPost, base+"/api/analyze-character", good[0], `{"name":"Stays Queued"}`)
	var acc struct{ ID string }
	if err := json.Unmarshal([]byte(job.body), &acc); err != nil || job.code != http.StatusAccepted {
		t.Fatalf("POST a job: %d %s", job.code, job.body)
	}
	dash := http.Header{"Authorization": {"Basic " + basicCreds(authDashUser, authDashPass)}}
	q, id := tasks.Queue, acc.ID
	writes := []struct{ method, path string }{
		{http.MethodPost, "/queues/" + q + ":pause"},
		{http.MethodPost, "/queues/" + q + ":resume"},
		{http.MethodDelete, "/queues/" + q},
		{http.MethodDelete, "/queues/" + q + "/pending_tasks/" + id},
		{http.MethodPost, "/queues/" + q + "/pending_tasks/" + id + ":archive"},
		{http.MethodDelete, "/queues/" + q + "/pending_tasks:delete_all"},
		{http.MethodPost, "/queues/" + q + "/pending_tasks:archive_all"},
		{http.MethodPost, "/queues/" + q + "/pending_tasks:batch_delete"},
		{http.MethodPost, "/queues/" + q + "/pending_tasks:batch_archive"},
		{http.MethodPost, "/queues/" + q + "/active_tasks/" + id + ":cancel"},
		{http.MethodPost, "/queues/" + q + "/active_tasks:cancel_all"},
		{http.MethodPost, "/queues/" + q + "/archived_tasks:run_all"},
		{http.MethodDelete, "/queues/" + q + "/completed_tasks:delete_all"},
		{http.MethodPut, "/queues/" + q + ":pause"},
		{http.MethodPatch, "/queues/" + q},
	}
	for _, w := range writes {
		path := api.DashboardPath + "/api" + w.path
		body := ""
		if strings.Contains(w.path, ":batch_") {
			body = `{"task_ids":["` + id + `"]}`
		}
		refused401(t, "dashboard "+w.method+" "+w.path+" without auth", w.method, authDo(t, w.method, base+path, nil, body), "Basic")
		got := authDo(t, w.method, base+path, dash, body)
		if got.code != http.StatusMethodNotAllowed || !strings.Contains(got.body, "read-only") {
			t.Errorf("read-only dashboard %s %s: %d %s, want 405 read-only", w.method, w.path, got.code, got.body)
		}
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	info, err := insp.GetQueueInfo(q)
	if err != nil {
		t.Fatal(err)
	}
	if info.Paused {
		t.Errorf("queue %s is paused after refused writes", q)
	}
	if ti, err := insp.GetTaskInfo(q, id); err != nil || ti.State != asynq.TaskStatePending {
		t.Errorf("task %s after refused writes: %v %v, want it pending", id, ti, err)
	}
	// asynqmon answers {"current":{...,"paused":false,...},"history":[...]}.
	got := authDo(t, http.MethodGet, base+api.DashboardPath+"/api/queues/"+q, dash, "")
	if got.code != http.StatusOK || !strings.Contains(got.body, `"paused":false`) {
		t.Errorf("dashboard queue after refused writes: %d %s, want it unpaused", got.code, got.body)
	}

	// No credential of any kind in the API's log.
	if hits := testutil.FindSecrets(p.logs.String(), authTokA, authTokB, authDashPass); len(hits) > 0 {
		t.Errorf("credentials in the log: %v", hits)
	}
}
