package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultAddr is where keyq api listens when API_ADDR is unset.
const DefaultAddr = ":8080"

// drainTimeout bounds how long Serve waits for requests in flight once its
// context ends.
const drainTimeout = 15 * time.Second

// Serve answers requests on ln until ctx ends, then drains the requests in
// flight. The caller listens first, so that a taken port fails at once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute, // a 10 MiB body on a slow link
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	healCtx, stopHeal := context.WithCancel(ctx)
	defer stopHeal()
	go s.healLoop(healCtx)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("API shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
