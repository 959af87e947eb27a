package api

import (
	"fmt"
	"log/slog"
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
		s.log.Log(r.Context(), accessLevel(r.Method, sw.Status), fmt.Sprintf("%d %s %s %s", sw.Status, r.Method, path, elapsed(time.Since(start))))
	})
}

// accessLevel keeps routine successful reads (polls, page refreshes, the
// dashboard's own calls, scrapes) at DEBUG: they were 98% of the lines.
// Writes and errors stay at INFO, server errors at WARN.
func accessLevel(method string, status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelWarn
	case status < 400 && (method == http.MethodGet || method == http.MethodHead):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func elapsed(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return d.Round(100 * time.Millisecond).String()
}
