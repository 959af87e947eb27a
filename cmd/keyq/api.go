package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/internal/redisconn"
	keyusage "github.com/keyq/keyq/usage"
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

// PoolEnv is what the API knows of the models and their key pools: the
// chain and the models a job may name, the workers' budgets (for quota
// bars and ratios), whether /metrics has a series per key, prices and
// caps.
type PoolEnv struct {
	Model         string        `envconfig:"GEMINI_MODEL" desc:"model chain whose key pools /api/keys?model=, /keys and /metrics show (the first by default)"`
	Allowed       string        `envconfig:"GEMINI_MODELS_ALLOWED" desc:"models a job may name in \"model\" (default: the chain)"`
	RPM           int           `envconfig:"GEMINI_RPM" desc:"the workers' per-minute budget per project, shown against each project's calls (0 = none)"`
	RPD           int           `envconfig:"GEMINI_RPD" desc:"the workers' per-day budget per project, shown against each project's calls (0 = none)"`
	PerKeyMetrics bool          `envconfig:"METRICS_PER_KEY" desc:"add per-key series to /metrics (5+ a key); by default per state and project only"`
	FlexTimeout   time.Duration `envconfig:"JOB_TIMEOUT_FLEX" desc:"bound on one run of a flex job"`
	Prices        string        `envconfig:"GEMINI_PRICES" desc:"USD per million tokens: model=input/output/thinking/cached,..."`
	Caps          string        `envconfig:"API_TOKEN_CAPS" desc:"daily cap per API token id: <16 hex digits of sha256(token)>=100000tok or =2.50usd, or *=... for every token"`
}

func defaultPoolEnv() PoolEnv {
	return PoolEnv{Model: gemini.DefaultModels, FlexTimeout: api.DefaultJobTimeoutFlex, Prices: keyusage.DefaultPrices}
}

func newAPIConfig() command {
	return &apiConfig{RedisEnv: defaultRedisEnv(), APIEnv: defaultAPIEnv(), JobEnv: defaultJobEnv(), LogEnv: defaultLogEnv(),
		DashboardEnv: defaultDashboardEnv(), PoolEnv: defaultPoolEnv()}
}

func (c *apiConfig) validate() error {
	return joinErrs(checkRedisURL(c.URL), c.APIEnv.validate(), c.JobEnv.validate(), c.LogEnv.validate(),
		c.APIAuthEnv.validate(), c.DashboardEnv.validate(), c.modelEnv().validate())
}

func (c *apiConfig) modelEnv() modelEnv { return c.PoolEnv.modelEnv() }

func (p PoolEnv) modelEnv() modelEnv {
	return modelEnv{GeminiEnv: GeminiEnv{Model: p.Model, Allowed: p.Allowed, RPM: p.RPM, RPD: p.RPD},
		PerKeyMetrics: p.PerKeyMetrics, FlexTimeout: p.FlexTimeout, Prices: p.Prices, Caps: p.Caps}
}

func (c *apiConfig) run(ctx context.Context, log *slog.Logger) error {
	rdb, err := redisconn.Open(c.URL)
	if err != nil {
		return configError{fmt.Errorf("REDIS_URL cannot be used: %w", err)}
	}
	defer rdb.Close()
	watchRedis(ctx, rdb, c.URL, log)
	return serveAPI(ctx, rdb, c.modelEnv(), c.APIEnv, c.JobEnv, apiOps{APIAuthEnv: c.APIAuthEnv, DashboardEnv: c.DashboardEnv}, log)
}

// serveAPI listens before it serves, so a taken port fails at once, and
// drains in-flight requests when ctx ends.
func serveAPI(ctx context.Context, rdb redis.UniversalClient, me modelEnv, a APIEnv, j JobEnv, ops apiOps, log *slog.Logger) error {
	opts := ops.options(log)
	opts.JobMaxRetry, opts.JobTimeout, opts.JobRetention, opts.Logger = j.maxRetry(), j.Timeout, j.Retention, log
	opts.MaxConns = a.MaxConns
	if err := me.apply(rdb, &opts); err != nil {
		return configError{err}
	}
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
