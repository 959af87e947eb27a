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
	"github.com/keyq/keyq/keyring"
)

func runAPI(ctx context.Context, cfg apiConfig, log *slog.Logger) error {
	rdb, err := openRedis(cfg.URL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	return serveAPI(ctx, rdb, cfg.Model, cfg.APIEnv, cfg.JobEnv, apiOps{APIAuthEnv: cfg.APIAuthEnv, DashboardEnv: cfg.DashboardEnv}, log)
}

// serveAPI listens before it serves, so a taken port fails at once, and
// drains in-flight requests when ctx ends.
func serveAPI(ctx context.Context, rdb redis.UniversalClient, model string, a APIEnv, j JobEnv, ops apiOps, log *slog.Logger) error {
	opts, err := ops.options(log)
	if err != nil {
		return configError{err}
	}
	opts.JobMaxRetry, opts.JobTimeout, opts.JobRetention, opts.Logger = &j.MaxRetry, j.Timeout, j.Retention, log
	opts.Keys = keyring.NewAdmin(rdb, keyringOptions(GeminiEnv{Model: model}))
	srv, err := api.New(rdb, opts)
	if err != nil {
		return configError{err}
	}
	defer srv.Close() // the dashboard's Redis connections
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
