package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/internal/redisconn"
	"github.com/keyq/keyq/metrics"
	keyusage "github.com/keyq/keyq/usage"
)

// simulatedKeys stand in for real keys when GEMINI_API_KEY is unset.
const simulatedKeys = "sim-key-1,sim-key-2,sim-key-3"

// devConfig differs in its defaults: no REDIS_URL means an embedded Redis,
// no GEMINI_API_KEY a simulated Gemini.
type devConfig struct {
	RedisURL string `envconfig:"REDIS_URL" desc:"Redis to use; unset: an embedded in-memory Redis"`
	GeminiEnv
	APIEnv
	JobEnv
	WorkerEnv
	LogEnv
	APIAuthEnv
	DashboardEnv
	SimEnv
	PerKeyMetrics bool `envconfig:"METRICS_PER_KEY" desc:"add per-key series to /metrics (5+ a key); by default per state and project only"`
}

func newDevConfig() command {
	return &devConfig{GeminiEnv: defaultGeminiEnv(), APIEnv: defaultAPIEnv(), JobEnv: defaultJobEnv(), WorkerEnv: defaultWorkerEnv(),
		LogEnv: defaultLogEnv(), DashboardEnv: defaultDashboardEnv(), SimEnv: defaultSimEnv()}
}

func (c *devConfig) validate() error {
	var redisErr error
	if c.RedisURL != "" {
		redisErr = checkRedisURL(c.RedisURL)
	}
	return joinErrs(redisErr, c.SimEnv.validate(), c.GeminiEnv.validate(), c.APIEnv.validate(), c.JobEnv.validate(),
		c.WorkerEnv.validate(), c.LogEnv.validate(), c.APIAuthEnv.validate(), c.DashboardEnv.validate())
}

// run runs the API and a worker in one process, substituting what is not
// configured: an embedded Redis for REDIS_URL, a simulated Gemini for
// GEMINI_API_KEY. Each substitution is announced loudly.
func (c *devConfig) run(ctx context.Context, log *slog.Logger) error {
	rdb, err := c.redis(ctx, log)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if c.APIKey == "" && c.APIKeyFile == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("start simulated Gemini: %w", err)
		}
		base := "http://" + ln.Addr().String()
		go serveFake(ctx, ln, c.SimEnv, log)
		log.Warn(fmt.Sprintf("!!! GEMINI_API_KEY is unset: answering with a SIMULATED Gemini at %s (%d%% of calls answer 503, %s per call). Set GEMINI_API_KEY to call Google.",
			base, int(c.SimFailureRate*100), c.SimLatency))
		c.APIKey, c.BaseURL = simulatedKeys, base
	}
	watch := watchRedis(ctx, rdb, cmpOr(c.RedisURL, "redis://embedded"), log)
	w, err := newWorker(ctx, rdb, c.GeminiEnv, c.WorkerEnv, watch, log)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Shutdown()
	// The worker's metrics join the API's on /metrics: one process, one
	// scrape (keyq dev has no WORKER_METRICS_ADDR).
	ops := apiOps{APIAuthEnv: c.APIAuthEnv, DashboardEnv: c.DashboardEnv, collectors: metrics.WorkerCollectors()}
	me := modelEnv{GeminiEnv: c.GeminiEnv, PerKeyMetrics: c.PerKeyMetrics, FlexTimeout: api.DefaultJobTimeoutFlex, Prices: keyusage.DefaultPrices}
	return serveAPI(ctx, rdb, me, c.APIEnv, c.JobEnv, ops, log)
}

// redis opens REDIS_URL, or an embedded Redis when it is unset.
func (c *devConfig) redis(ctx context.Context, log *slog.Logger) (*redis.Client, error) {
	if c.RedisURL != "" {
		rdb, err := redisconn.Open(c.RedisURL)
		if err != nil {
			return nil, configError{fmt.Errorf("REDIS_URL cannot be used: %w", err)}
		}
		return rdb, nil
	}
	m, err := startMiniredis(ctx)
	if err != nil {
		return nil, err
	}
	log.Warn("!!! REDIS_URL is unset: using an EMBEDDED IN-MEMORY Redis (miniredis). Jobs vanish when keyq stops. Set REDIS_URL for a real Redis.")
	return redis.NewClient(&redis.Options{Addr: m.Addr()}), nil
}

// startMiniredis starts the embedded Redis, closed when ctx ends, and
// moves its clock forward from a ticker, so that TTLs expire; ClockTTL
// would scan every key on every command (see shared asynq notes).
func startMiniredis(ctx context.Context) (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded Redis: %w", err)
	}
	go func() {
		defer m.Close()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return m, nil
}

func joinErrs(errs ...error) error { return errors.Join(errs...) }
