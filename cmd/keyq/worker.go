package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/internal/redact"
	"github.com/keyq/keyq/internal/redisconn"
	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/worker"
)

type workerConfig struct {
	RedisEnv
	GeminiEnv
	WorkerEnv
	LogEnv
	MetricsEnv
}

func newWorkerConfig() command {
	return &workerConfig{RedisEnv: defaultRedisEnv(), GeminiEnv: defaultGeminiEnv(), WorkerEnv: defaultWorkerEnv(),
		LogEnv: defaultLogEnv(), MetricsEnv: defaultMetricsEnv()}
}

func (c *workerConfig) validate() error {
	var missing error
	if strings.Trim(c.APIKey, " ,") == "" && c.APIKeyFile == "" {
		missing = fmt.Errorf("GEMINI_API_KEY is required: one or more keys separated by commas (or GEMINI_API_KEY_FILE)")
	}
	return joinErrs(missing, checkRedisURL(c.URL), c.GeminiEnv.validate(), c.WorkerEnv.validate(), c.LogEnv.validate())
}

func (c *workerConfig) run(ctx context.Context, log *slog.Logger) error {
	rdb, err := redisconn.Open(c.URL)
	if err != nil {
		return configError{fmt.Errorf("REDIS_URL cannot be used: %w", err)}
	}
	defer rdb.Close()
	stopMetrics, err := serveWorkerMetrics(ctx, c.MetricsEnv, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	w, err := newWorker(ctx, rdb, c.GeminiEnv, c.WorkerEnv, log)
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
	// Every line and error of the worker passes through a redactor of
	// every run of 12+ characters of every key of the pool.
	scrub := &redact.Pool{}
	scrub.Set(secrets(keys))
	log = slog.New(scrub.Handler(log.Handler()))
	log.Info(fmt.Sprintf("Loaded %d Gemini API keys for load balancing", len(keys)), "keys", keys)
	ring, err := keyring.New(rdb, keys, keyringOptions(g))
	if err != nil {
		return nil, configError{err}
	}
	if g.APIKeyFile != "" {
		go watchKeyFile(ctx, g, ring, scrub, sum, notifyHUP(), log)
	}
	if err := ring.Announce(ctx); err != nil {
		log.Warn("could not announce the keys to Redis; /api/keys will not show them until it can", "err", err)
	}
	// Keep as many idle connections as calls can be in flight: Go's default
	// of 2 per host would open (and TLS-handshake) a new one for most calls.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = wc.Concurrency
	gem, err := gemini.New(gemini.Options{BaseURL: g.BaseURL, Model: g.Model, Timeout: g.Timeout,
		HTTPClient: &http.Client{Transport: transport}, Redact: scrub.String})
	if err != nil {
		return nil, configError{err}
	}
	h, err := worker.NewHandler(gem, ring, worker.HandlerOptions{Retries: g.retries(), RetryDelay: g.RetryDelay, Logger: log})
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
		ShutdownTimeout:     g.Timeout + g.RetryDelay + 5*time.Second,
		Logger:              log,
		TaskCheckInterval:   wc.TaskCheckInterval,
		WebhookSecrets:      wc.secrets(),
		WebhookAllowPrivate: wc.WebhookAllowPrivate,
		WebhookConcurrency:  wc.WebhookConcurrency,
	})
}

func secrets(keys []keyring.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Secret()
	}
	return out
}

// keyringOptions names the pool after the model: Gemini's quotas are per
// project and model, and so are keyq's cooldowns and budgets.
func keyringOptions(g GeminiEnv) keyring.Options {
	return keyring.Options{Pool: g.Model, RPM: g.RPM, RPD: g.RPD}
}
