package api

import (
	"bufio"
	"bytes"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// yamlPaths reads the keys of the top-level "paths:" map of an OpenAPI
// YAML file: lines indented by exactly two spaces under it.
func yamlPaths(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	paths := map[string]bool{}
	in := false
	key := regexp.MustCompile(`^  (/[^:\s]*):\s*$`)
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "paths:":
			in = true
		case in && line != "" && !strings.HasPrefix(line, " "):
			in = false
		case in:
			if m := key.FindStringSubmatch(line); m != nil {
				paths[m[1]] = true
			}
		}
	}
	if len(paths) == 0 {
		t.Fatal("no paths found in openapi.yaml")
	}
	return paths
}

// Every route of the route table, the whole surface of the mux, is in
// openapi.yaml, and openapi.yaml describes no route the server lacks.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	s, _, _ := opsServer(t, Options{Dashboard: Dashboard{Password: dashPass}})
	documented := yamlPaths(t, openAPI)
	mux := s.mux()
	served := map[string]bool{}
	for _, rt := range s.routes() {
		served[rt.pattern] = true
		if !documented[rt.pattern] {
			t.Errorf("route %s is not in openapi.yaml", rt.pattern)
		}
		// The mux answers the route with the route's own handler.
		path := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(rt.pattern, "x")
		if _, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, path, nil)); pattern != rt.pattern {
			t.Errorf("the mux answers %s with pattern %q", path, pattern)
		}
	}
	for p := range documented {
		if !served[p] {
			t.Errorf("openapi.yaml describes %s, which the server does not serve", p)
		}
	}

	w := opsDo(t, s, http.MethodGet, "/api/openapi.yaml", nil, "")
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), openAPI) || !strings.Contains(w.Header().Get("Content-Type"), "yaml") {
		t.Errorf("GET /api/openapi.yaml: %d %v", w.Code, w.Header())
	}
	// Every error code of the table is in the description's Error schema.
	for code := range httpStatus {
		if !bytes.Contains(openAPI, []byte(code)) {
			t.Errorf("error code %s is not in openapi.yaml", code)
		}
	}
}
