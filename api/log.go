package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/keyq/keyq/internal/httpx"
)

// accessLog writes one line per request in the style of the original
// in-process fix's backend, which operators already read:
// "200 POST /api/analyze-character 3ms".
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := httpx.NewStatusWriter(w)
		next.ServeHTTP(sw, r)
		path := r.URL.Path
		if len(path) > 200 {
			path = path[:200] + "..."
		}
		s.log.Info(fmt.Sprintf("%d %s %s %s", sw.Status, r.Method, path, elapsed(time.Since(start))))
	})
}

func elapsed(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return d.Round(100 * time.Millisecond).String()
}
