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
	keyusage "github.com/keyq/keyq/usage"
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
	watch := watchRedis(ctx, rdb, c.URL, log)
	stopMetrics, err := serveWorkerMetrics(ctx, c.MetricsEnv, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	w, err := newWorker(ctx, rdb, c.GeminiEnv, c.WorkerEnv, watch, log)
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
func newWorker(ctx context.Context, rdb redis.UniversalClient, g GeminiEnv, wc WorkerEnv, watch *redisconn.Watcher, log *slog.Logger) (*worker.Worker, error) {
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
	chain, all, _ := g.models() // validated
	models, rs, announceErr, err := openModels(ctx, rdb, g, keys, all, wc.Concurrency, scrub)
	if err != nil {
		return nil, err
	}
	if announceErr != nil && !watch.Down() { // a Redis outage is reported once, by the watcher
		log.Warn("could not announce the keys to Redis; the worker tries again every 30 s", "err", announceErr)
	}
	if g.APIKeyFile != "" {
		go watchKeyFile(ctx, g, rs, scrub, sum, notifyHUP(), log)
	}
	h, err := worker.NewHandler(models[0].Client, models[0].Ring, worker.HandlerOptions{Retries: g.retries(), RetryDelay: g.RetryDelay,
		Logger: log, Fallbacks: models[1:len(chain)], Extra: models[len(chain):], Usage: keyusage.NewStore(rdb, "")})
	if err != nil {
		return nil, err
	}
	ready := "worker ready"
	if watch.Down() {
		ready = "worker started; it takes jobs once Redis answers"
	}
	log.Info(ready, "concurrency", wc.Concurrency, "models", strings.Join(chain, ","), "allowed", strings.Join(all, ","),
		"attempts_per_run", h.MaxAttempts(), "projects", models[0].Ring.Projects(), "rpm", g.RPM, "rpd", g.RPD)
	return worker.New(rdb, h, worker.Options{
		Concurrency:   wc.Concurrency,
		JobRetryDelay: wc.JobRetryDelay,
		// Long enough for a call under way, plus the wait before the next,
		// to end on its own: a cut call would be billed and run again.
		ShutdownTimeout:     g.Timeout + g.RetryDelay + 5*time.Second,
		Alerts:              worker.NewAlerts(wc.AlertURL, rdb, log),
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

// openModels opens one key pool and one Gemini client per model: Gemini's
// quotas are per project and model. announceErr is the first failure to
// announce the keys (the worker announces again every probe interval).
func openModels(ctx context.Context, rdb redis.UniversalClient, g GeminiEnv, keys []keyring.Key, names []string,
	concurrency int, scrub *redact.Pool) (models []worker.Model, rs rings, announceErr error, err error) {
	thinking, _ := gemini.ParseThinking(g.Thinking) // validated
	// Keep as many idle connections as calls can be in flight: Go's default
	// of 2 per host would open (and TLS-handshake) a new one for most calls.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = concurrency
	hc := &http.Client{Transport: transport}
	for _, name := range names {
		ring, err := keyring.New(rdb, keys, keyringOptions(g, name))
		if err != nil {
			return nil, nil, nil, configError{err}
		}
		if err := ring.Announce(ctx); err != nil && announceErr == nil {
			announceErr = err
		}
		gem, err := gemini.New(gemini.Options{BaseURL: g.BaseURL, Model: name, Timeout: g.Timeout, FlexTimeout: g.FlexTimeout,
			Thinking: thinking, HTTPClient: hc, Redact: scrub.String})
		if err != nil {
			return nil, nil, nil, configError{err}
		}
		models, rs = append(models, worker.Model{Client: gem, Ring: ring}), append(rs, ring)
	}
	return models, rs, announceErr, nil
}

// watchRedis reports Redis outages in a few clear lines (and quiets the
// libraries' own connection errors) until ctx ends.
func watchRedis(ctx context.Context, rdb redis.UniversalClient, rawURL string, log *slog.Logger) *redisconn.Watcher {
	redisconn.QuietLibraryLogs(log)
	w := redisconn.NewWatcher(rdb, redisconn.Describe(rawURL), log)
	_ = w.Check(ctx)
	go w.Run(ctx)
	return w
}

// keyringOptions names the pool after the model: Gemini's quotas are per
// project and model, and so are keyq's cooldowns and budgets.
func keyringOptions(g GeminiEnv, model string) keyring.Options {
	return keyring.Options{Pool: model, RPM: g.RPM, RPD: g.RPD}
}

// rings are the pools of every model, reloaded together.
type rings []*keyring.Ring

func (rs rings) Keys() []keyring.Key { return rs[0].Keys() }

func (rs rings) SetKeys(ctx context.Context, keys []keyring.Key) error {
	for _, r := range rs {
		if err := r.SetKeys(ctx, keys); err != nil {
			return err
		}
	}
	return nil
}
