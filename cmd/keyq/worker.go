package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/worker"
)

func runWorker(ctx context.Context, cfg workerConfig, log *slog.Logger) error {
	rdb, err := openRedis(cfg.URL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	stopMetrics, err := serveWorkerMetrics(ctx, cfg.MetricsEnv, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	w, err := newWorker(ctx, rdb, cfg.GeminiEnv, cfg.WorkerEnv, log)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("worker shutting down: letting running jobs finish")
	w.Shutdown()
	return nil
}

// newWorker builds a worker and, with GEMINI_API_KEY_FILE, watches the file
// until ctx ends.
func newWorker(ctx context.Context, rdb redis.UniversalClient, g GeminiEnv, wc WorkerEnv, log *slog.Logger) (*worker.Worker, error) {
	keys, sum, err := loadKeys(g, log)
	if err != nil {
		return nil, configError{err}
	}
	log.Info(fmt.Sprintf("Loaded %d Gemini API keys for load balancing", len(keys)), "keys", keys)
	ring, err := keyring.New(rdb, keys, keyringOptions(g))
	if err != nil {
		return nil, configError{err}
	}
	if g.APIKeyFile != "" {
		go watchKeyFile(ctx, g, ring, sum, notifyHUP(), log)
	}
	if err := ring.Announce(ctx); err != nil {
		log.Warn("could not announce the keys to Redis; /api/keys will not show them until it can", "err", err)
	}
	// Keep as many idle connections as calls can be in flight: Go's default
	// of 2 per host would open (and TLS-handshake) a new one for most calls.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = wc.Concurrency
	gem, err := gemini.New(gemini.Options{BaseURL: g.BaseURL, Model: g.Model, Timeout: g.Timeout, HTTPClient: &http.Client{Transport: transport}})
	if err != nil {
		return nil, configError{err}
	}
	h, err := worker.NewHandler(gem, ring, worker.HandlerOptions{Retries: &g.Retries, RetryDelay: g.RetryDelay, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("worker ready", "concurrency", wc.Concurrency, "model", g.Model, "attempts_per_run", h.MaxAttempts(),
		"projects", ring.Projects(), "rpm", g.RPM, "rpd", g.RPD)
	return worker.New(rdb, h, worker.Options{
		Concurrency:   wc.Concurrency,
		JobRetryDelay: wc.JobRetryDelay,
		// Long enough for a call under way, plus the wait before the next,
		// to end on its own: a cut call would be billed and run again.
		ShutdownTimeout: g.Timeout + g.RetryDelay + 5*time.Second,
		Logger:          log,
	})
}

// keyringOptions names the pool after the model: Gemini's quotas are per
// project and model, and so are keyq's cooldowns and budgets.
func keyringOptions(g GeminiEnv) keyring.Options {
	return keyring.Options{Pool: g.Model, RPM: g.RPM, RPD: g.RPD}
}
