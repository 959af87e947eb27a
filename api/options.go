package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyq/keyq/usage"
	"github.com/keyq/keyq/webhook"
)

// Defaults for Options.
const (
	DefaultJobMaxRetry = 3
	// NoJobRetries as Options.JobMaxRetry: a job fails with its first
	// failed run.
	NoJobRetries        = -1
	DefaultJobTimeout   = 5 * time.Minute
	DefaultJobRetention = 24 * time.Hour
)

// Options configure a Server. The zero value uses the defaults.
type Options struct {
	// JobMaxRetry is how many times a job is run again after a whole run
	// failed. 0 means DefaultJobMaxRetry (3); NoJobRetries means none.
	JobMaxRetry int
	// JobTimeout bounds one job run. Default 5m.
	JobTimeout time.Duration
	// JobRetention is how long a finished job stays pollable. Default 24h.
	JobRetention time.Duration
	// Logger gets the access log and internal errors. Default slog.Default().
	Logger *slog.Logger
	// Keys reports and changes the key pool's state (GET /api/keys, admin
	// actions). Nil: those routes answer 404.
	Keys KeyAdmin
	// Pool names the key pool Keys shows (the model), for metrics labels.
	Pool string
	// PerKeyMetrics adds per-key series to /metrics (5 or more a key);
	// by default only per state and per project (METRICS_PER_KEY).
	PerKeyMetrics bool
	// Tokens are the bearer tokens /api/* accepts (auth.go). None: /api/*
	// is open to anyone, except the key admin routes, which then answer 403.
	Tokens []string
	// CORSOrigins may call /api/* from a browser: origins like
	// https://app.example.com, or "*" for any. None: no CORS headers.
	CORSOrigins []string
	// Dashboard serves asynqmon at /monitoring/ and the key table at /keys
	// behind HTTP basic auth. Zero: neither is served.
	Dashboard Dashboard
	// Collectors are served on /metrics besides the API's own (HTTP
	// requests, asynq queues, keys); keyq dev adds the worker's.
	Collectors []prometheus.Collector

	// Models are the key pools per model, the fallback chain first, for
	// GET /api/keys?model=. None: /api/keys shows Keys alone.
	Models []ModelKeys
	// AllowedModels may be named by a job ("model"). Default: the names of
	// Models. None at all: any model name passes to the worker.
	AllowedModels []string
	// JobTimeoutFlex bounds one run of a flex generate job. Default 30m.
	JobTimeoutFlex time.Duration
	// Usage, if set, answers GET /api/usage and the keys' usage, and
	// enforces Caps.
	Usage *usage.Store
	// Prices estimate costs in usage answers. None: no cost.
	Prices usage.Prices
	// Caps are daily allowances per API token id (API_TOKEN_CAPS).
	Caps Caps
	// MaxConns bounds the connections Serve holds open at once; more wait
	// in the kernel's listen backlog until one closes. 0 means
	// DefaultMaxConns (1024).
	MaxConns int
	// Webhooks accepts callback_url on jobs and batches: set it when the
	// workers have a WEBHOOK_SECRET to sign deliveries. Default false: a
	// callback_url is refused with 400.
	Webhooks bool
	// WebhookAllowPrivate accepts callbacks to loopback and private
	// addresses (tests, a receiver on the same host). Default false.
	WebhookAllowPrivate bool
	// TokenCallbacks is a default callback URL per bearer token (one of
	// Tokens), for jobs that give none. Kept by token id, never the token.
	TokenCallbacks map[string]string
}

// validate checks every option once; keyq's command reuses the exported
// checks to name its environment variables.
func (o Options) validate() error {
	var errs []error
	if o.JobMaxRetry < NoJobRetries || o.JobRetention < 0 {
		errs = append(errs, errors.New("api: JobMaxRetry must be 0 (default) or more, or NoJobRetries, and JobRetention must not be negative"))
	}
	if o.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("api: MaxConns must be 0 (default %d) or more", DefaultMaxConns))
	}
	if o.JobTimeout != 0 {
		errs = append(errs, CheckJobTimeout(o.JobTimeout))
	}
	errs = append(errs, CheckCORSOrigins(o.CORSOrigins), o.Dashboard.Validate(), o.checkTokenCallbacks())
	return errors.Join(errs...)
}

// MinJobTimeout is the shortest job timeout: asynq keeps timeouts in whole
// seconds, and less would be none at all.
const MinJobTimeout = time.Second

// CheckJobTimeout reports a job timeout asynq cannot keep.
func CheckJobTimeout(d time.Duration) error {
	if d < MinJobTimeout {
		return fmt.Errorf("a job timeout must be %s or more, like 5m (got %s)", MinJobTimeout, d)
	}
	return nil
}

// CheckCORSOrigins reports entries that are not origins.
func CheckCORSOrigins(list []string) error {
	_, err := newCORSPolicy(list)
	return err
}

// DefaultDashboardUser is the dashboard's basic-auth user when none is set.
const DefaultDashboardUser = "admin"

// Validate reports a dashboard user that basic auth cannot carry.
func (d Dashboard) Validate() error {
	if d.Password != "" && d.User != "" && (strings.TrimSpace(d.User) == "" || strings.Contains(d.User, ":")) {
		return errors.New("the dashboard user must not be blank or hold a colon (default " + DefaultDashboardUser + ")")
	}
	return nil
}

// checkTokenCallbacks reports default callbacks of unknown tokens or that
// are not http(s) URLs; the messages never show a token.
func (o Options) checkTokenCallbacks() error {
	known := newSecrets(o.Tokens)
	var errs []error
	i := 0
	for tok, u := range o.TokenCallbacks {
		i++
		if !known.match(tok) {
			errs = append(errs, fmt.Errorf("api: default callback %d is for a token that is not one of the API tokens", i))
		}
		if err := webhook.CheckURL(context.Background(), u, true); err != nil {
			errs = append(errs, fmt.Errorf("api: default callback %d: %w", i, err))
		}
	}
	if len(o.TokenCallbacks) > 0 && !o.Webhooks {
		errs = append(errs, errors.New("api: default callbacks need webhooks on (a WEBHOOK_SECRET)"))
	}
	return errors.Join(errs...)
}
