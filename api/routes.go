package api

import (
	"fmt"
	"net/http"
)

// access says who may call a route.
type access int

const (
	// public routes answer anyone: probes, scrapers, the API's description.
	public access = iota
	// bearer routes need a token from API_TOKENS when tokens are set, and
	// are open when none are (keyq api warns at start).
	bearer
	// admin routes always need a token: with no API_TOKENS they answer 403.
	admin
	// operator routes (the dashboard, the keys page) need the dashboard's
	// basic auth; they exist only when a dashboard password is set.
	operator
)

// route is one entry of the server's route table; the ServeMux is built
// from it and nothing else, so the table is the whole HTTP surface (the
// OpenAPI test walks it).
type route struct {
	pattern string
	access  access
	// methods the route answers; the others get a 405. Nil with
	// mounted: the mounted handler checks methods itself.
	methods []string
	// serve answers the route (ours: it returns an error for writeError).
	serve handlerFunc
	// mounted serves a route that is not ours (asynqmon, Prometheus).
	mounted http.Handler
}

// routes is the route table.
func (s *Server) routes() []route {
	get := []string{http.MethodGet, http.MethodHead}
	post := []string{http.MethodPost}
	getDelete := []string{http.MethodGet, http.MethodHead, http.MethodDelete}
	rs := []route{
		{pattern: "/api/analyze-character", access: bearer, methods: post, serve: s.checkJobOptions(s.postAnalyzeCharacter)},
		{pattern: "/api/generate", access: bearer, methods: post, serve: s.checkJobOptions(s.postGenerate)},
		{pattern: "/api/usage", access: bearer, methods: get, serve: s.getUsage},
		{pattern: "/api/jobs", access: bearer, methods: get, serve: s.listJobs},
		{pattern: "/api/jobs/{id}", access: bearer, methods: getDelete, serve: s.jobRoute},
		{pattern: "/api/jobs/{id}/events", access: bearer, methods: get, serve: s.getJobEvents},
		{pattern: "/api/batches", access: bearer, methods: post, serve: s.postBatch},
		{pattern: "/api/batches/{id}", access: bearer, methods: getDelete, serve: s.batchRoute},
		{pattern: "/api/batches/{id}/results", access: bearer, methods: get, serve: s.getBatchResults},
		{pattern: "/api/keys", access: bearer, methods: get, serve: s.getKeys},
		{pattern: "/api/keys/summary", access: bearer, methods: get, serve: s.getKeysSummary},
		{pattern: "/api/keys/{fingerprint}/{action}", access: admin, methods: post, serve: s.postKeyAction},
		{pattern: "/api/openapi.yaml", access: public, methods: get, serve: s.getOpenAPI},
		{pattern: "/healthz", access: public, methods: get, serve: s.healthz},
		{pattern: "/readyz", access: public, methods: get, serve: s.readyz},
		{pattern: "/metrics", access: public, methods: get, mounted: s.metrics},
	}
	if s.dashboard != nil {
		rs = append(rs,
			route{pattern: s.dashboard.RootPath() + "/", access: operator, mounted: s.dashboardHandler()},
			route{pattern: "/keys", access: operator, methods: get, serve: s.keysPage},
			route{pattern: "/keys/{fingerprint}/{action}", access: operator, methods: post, serve: s.postKeysAction},
		)
	}
	return rs
}

// mux builds the ServeMux from the route table, each route behind its
// access check, and a JSON 404 for everything else.
func (s *Server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		f := rt.serve
		if f == nil {
			h := rt.mounted
			f = func(w http.ResponseWriter, r *http.Request) error { h.ServeHTTP(w, r); return nil }
		}
		if rt.methods != nil {
			f = allow(f, rt.methods...)
		}
		mux.Handle(rt.pattern, s.guard(rt.access, s.handle(f)))
	}
	mux.Handle("/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return &Error{Code: CodeNotFound, Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)}
	}))
	return mux
}
