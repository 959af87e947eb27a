package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/metrics"
)

// apiOps is what keyq api and keyq dev give the API beyond APIEnv and
// JobEnv: auth, CORS, the operator pages, more metrics.
type apiOps struct {
	APIAuthEnv
	DashboardEnv
	// collectors are served on the API's /metrics too (keyq dev: the
	// worker's, since its worker serves no metrics of its own).
	collectors []prometheus.Collector
}

// options turns the (validated) variables into api.Options fields,
// warning loudly of an open API.
func (o apiOps) options(log *slog.Logger) api.Options {
	opts := api.Options{Tokens: splitList(o.Tokens), CORSOrigins: splitList(o.CORSOrigins), Collectors: o.collectors,
		Webhooks: o.WebhookSecret != "", WebhookAllowPrivate: o.WebhookAllowPrivate}
	opts.TokenCallbacks, _ = o.tokenCallbacks() // validated
	if o.DashboardPassword != "" {
		opts.Dashboard = o.dashboard()
	}
	if len(opts.Tokens) == 0 {
		log.Warn("!!! API_TOKENS is unset: the API is OPEN, anyone who can reach API_ADDR may submit jobs and read results. Set API_TOKENS (comma-separated bearer tokens) to require a token; key admin actions are refused until you do.")
	} else {
		log.Info(fmt.Sprintf("API auth: /api/* needs one of %d bearer tokens (API_TOKENS)", len(opts.Tokens)))
	}
	for i, t := range opts.Tokens {
		if len(t) < 16 {
			log.Warn(fmt.Sprintf("API_TOKENS: token %d of %d is shorter than 16 characters; use long random tokens (openssl rand -hex 32)", i+1, len(opts.Tokens)))
		}
	}
	switch {
	case o.DashboardPassword == "":
		log.Info("dashboard off: set DASHBOARD_PASSWORD to serve /monitoring/ and /keys")
	case len(o.DashboardPassword) < 12:
		log.Warn("DASHBOARD_PASSWORD is shorter than 12 characters; the dashboard shows every job and the whole Redis INFO")
	}
	if o.DashboardPassword != "" {
		mode := "read-only"
		if !o.DashboardReadOnly {
			mode = "WRITABLE (DASHBOARD_READONLY=false: it can pause queues and delete tasks)"
		}
		log.Info("dashboard on at "+api.DashboardPath+"/ and /keys, "+mode, "user", o.DashboardUser)
	}
	return opts
}

// metricsOff reports whether WORKER_METRICS_ADDR turns the worker's
// metrics off.
func (m MetricsEnv) metricsOff() bool {
	a := strings.TrimSpace(m.WorkerMetricsAddr)
	return a == "" || strings.EqualFold(a, "off")
}

// serveWorkerMetrics serves a worker's Prometheus metrics (jobs by final
// status, job latency, upstream and key-pick latency, Go runtime) on
// WORKER_METRICS_ADDR until ctx ends. It listens before it returns, so a
// taken port is a configuration error at start. stop ends it at once.
func serveWorkerMetrics(ctx context.Context, m MetricsEnv, log *slog.Logger) (stop func(), err error) {
	if m.metricsOff() {
		log.Info("worker metrics off (WORKER_METRICS_ADDR)")
		return func() {}, nil
	}
	reg, err := metrics.NewRegistry(metrics.WorkerCollectors()...)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", m.WorkerMetricsAddr)
	if err != nil {
		return nil, configError{fmt.Errorf("WORKER_METRICS_ADDR %s: %w (set it to another address, or off)", m.WorkerMetricsAddr, err)}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(reg))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("worker metrics on http://"+ln.Addr().String()+"/metrics", "addr", ln.Addr().String())
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("worker metrics stopped", "err", err)
		}
	}()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		_ = hs.Close()
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }, nil
}
