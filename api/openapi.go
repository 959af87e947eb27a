package api

import (
	_ "embed"
	"net/http"
)

// openAPI describes every route of the route table (openapi_test.go checks).
//
//go:embed openapi.yaml
var openAPI []byte

// getOpenAPI answers GET /api/openapi.yaml. It is public, like /healthz:
// the description holds no secret, and client generators fetch it without
// a token.
func (s *Server) getOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(openAPI)
	return nil
}
