package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/internal/redisconn"
	"github.com/keyq/keyq/keyring"
)

type apiConfig struct {
	RedisEnv
	APIEnv
	JobEnv
	LogEnv
	APIAuthEnv
	DashboardEnv
	PoolEnv
}

// PoolEnv is what the API shows of the key pool: which one, with what
// budgets (the workers' GEMINI_RPM and GEMINI_RPD, for quota bars and
// ratios), and whether /metrics has a series per key.
type PoolEnv struct {
	Model         string `envconfig:"GEMINI_MODEL" desc:"model whose key pool /api/keys, /keys and /metrics show"`
	RPM           int    `envconfig:"GEMINI_RPM" desc:"the workers' per-minute budget per project, shown against each project's calls (0 = none)"`
	RPD           int    `envconfig:"GEMINI_RPD" desc:"the workers' per-day budget per project, shown against each project's calls (0 = none)"`
	PerKeyMetrics bool   `envconfig:"METRICS_PER_KEY" desc:"add per-key series to /metrics (5+ a key); by default per state and project only"`
}

func newAPIConfig() command {
	return &apiConfig{RedisEnv: defaultRedisEnv(), APIEnv: defaultAPIEnv(), JobEnv: defaultJobEnv(), LogEnv: defaultLogEnv(),
		DashboardEnv: defaultDashboardEnv(), PoolEnv: PoolEnv{Model: gemini.DefaultModel}}
}

func (c *apiConfig) validate() error {
	return joinErrs(checkRedisURL(c.URL), c.APIEnv.validate(), c.JobEnv.validate(), c.LogEnv.validate(),
		c.APIAuthEnv.validate(), c.DashboardEnv.validate())
}

func (c *apiConfig) run(ctx context.Context, log *slog.Logger) error {
	rdb, err := redisconn.Open(c.URL)
	if err != nil {
		return configError{fmt.Errorf("REDIS_URL cannot be used: %w", err)}
	}
	defer rdb.Close()
	watchRedis(ctx, rdb, c.URL, log)
	return serveAPI(ctx, rdb, c.PoolEnv, c.APIEnv, c.JobEnv, apiOps{APIAuthEnv: c.APIAuthEnv, DashboardEnv: c.DashboardEnv}, log)
}

// serveAPI listens before it serves, so a taken port fails at once, and
// drains in-flight requests when ctx ends.
func serveAPI(ctx context.Context, rdb redis.UniversalClient, p PoolEnv, a APIEnv, j JobEnv, ops apiOps, log *slog.Logger) error {
	opts := ops.options(log)
	opts.JobMaxRetry, opts.JobTimeout, opts.JobRetention, opts.Logger = j.maxRetry(), j.Timeout, j.Retention, log
	opts.Keys = keyring.NewAdmin(rdb, keyringOptions(GeminiEnv{Model: p.Model, RPM: p.RPM, RPD: p.RPD}))
	opts.Pool, opts.PerKeyMetrics = p.Model, p.PerKeyMetrics
	srv, err := api.New(rdb, opts)
	if err != nil {
		return configError{err}
	}
	defer srv.Close() // the dashboard's Redis connections
	ln, err := net.Listen("tcp", a.Addr)
	if err != nil {
		return configError{fmt.Errorf("API_ADDR %s: %w", a.Addr, err)}
	}
	shown := a.Addr // as configured, like the original fix's ":8080"
	if strings.HasSuffix(shown, ":0") {
		shown = ln.Addr().String()
	}
	log.Info("Backend listening on "+shown, "addr", ln.Addr().String())
	return srv.Serve(ctx, ln)
}
