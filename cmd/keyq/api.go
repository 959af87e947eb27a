package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/api"
)

func runAPI(ctx context.Context, cfg apiConfig, log *slog.Logger) error {
	rdb, err := openRedis(cfg.URL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	return serveAPI(ctx, rdb, cfg.APIEnv, cfg.JobEnv, log)
}

// serveAPI listens before it serves, so a taken port fails at once, and
// drains in-flight requests when ctx ends.
func serveAPI(ctx context.Context, rdb redis.UniversalClient, a APIEnv, j JobEnv, log *slog.Logger) error {
	srv, err := api.New(rdb, api.Options{JobMaxRetry: &j.MaxRetry, JobTimeout: j.Timeout, JobRetention: j.Retention, Logger: log})
	if err != nil {
		return configError{err}
	}
	ln, err := net.Listen("tcp", a.Addr)
	if err != nil {
		return configError{fmt.Errorf("API_ADDR %s: %w", a.Addr, err)}
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // a 10 MiB body on a slow link
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	shown := a.Addr // as configured, like the seed's ":8080"
	if strings.HasSuffix(shown, ":0") {
		shown = ln.Addr().String()
	}
	log.Info("Backend listening on "+shown, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("API shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
