package main

import (
	"context"
	"fmt"
	"log/slog"
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
	w, err := newWorker(rdb, cfg.GeminiEnv, cfg.WorkerEnv, log)
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

func newWorker(rdb redis.UniversalClient, g GeminiEnv, wc WorkerEnv, log *slog.Logger) (*worker.Worker, error) {
	keys, dropped, err := keyring.ParseKeys(g.APIKey)
	if err != nil {
		return nil, configError{fmt.Errorf("GEMINI_API_KEY: %w", err)}
	}
	for _, pos := range dropped {
		log.Warn(fmt.Sprintf("GEMINI_API_KEY: dropped the duplicate key at position %d", pos))
	}
	log.Info(fmt.Sprintf("Loaded %d Gemini API keys for load balancing", len(keys)), "keys", keys)
	ring, err := keyring.New(rdb, keys, keyring.Options{})
	if err != nil {
		return nil, err
	}
	gem, err := gemini.New(gemini.Options{BaseURL: g.BaseURL, Model: g.Model, Timeout: g.Timeout})
	if err != nil {
		return nil, configError{err}
	}
	h, err := worker.NewHandler(gem, ring, worker.HandlerOptions{Retries: &g.Retries, RetryDelay: g.RetryDelay, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info("worker ready", "concurrency", wc.Concurrency, "model", g.Model, "attempts_per_run", h.MaxAttempts())
	return worker.New(rdb, h, worker.Options{
		Concurrency:   wc.Concurrency,
		JobRetryDelay: wc.JobRetryDelay,
		// Long enough for a call under way, plus the wait before the next,
		// to end on its own: a cut call would be billed and run again.
		ShutdownTimeout: g.Timeout + g.RetryDelay + 5*time.Second,
		Logger:          log,
	})
}
