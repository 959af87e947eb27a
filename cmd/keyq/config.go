package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keyq/keyq/api"
	"github.com/keyq/keyq/gemini"
	"github.com/keyq/keyq/internal/redisconn"
	"github.com/keyq/keyq/worker"
)

// The environment is keyq's whole configuration; these names are a
// contract. Defaults are not written here: each config starts from the
// Default constants of the package that owns the setting (new*Config),
// and the environment overrides what it sets. Checks owned by a package
// are called from here only to name the variable in the message.

type RedisEnv struct {
	URL string `envconfig:"REDIS_URL" desc:"Redis holding jobs and the key rotation; rediss:// for TLS, redis-sentinel://host:port,.../db?master=name; a password goes in the URL"`
}

type GeminiEnv struct {
	APIKey      string        `envconfig:"GEMINI_API_KEY" desc:"Gemini API keys separated by commas, each optionally project:KEY (worker needs this or GEMINI_API_KEY_FILE)"`
	APIKeyFile  string        `envconfig:"GEMINI_API_KEY_FILE" desc:"file with the keys in the same syntax; re-read on SIGHUP and when it changes"`
	RPM         int           `envconfig:"GEMINI_RPM" desc:"calls per minute allowed per project and model, fleet-wide (0 = no limit)"`
	RPD         int           `envconfig:"GEMINI_RPD" desc:"calls per day (Pacific) allowed per project and model, fleet-wide (0 = no limit)"`
	Model       string        `envconfig:"GEMINI_MODEL" desc:"model fallback chain, comma-separated: a job moves on when a model is gone (404) or out of daily quota on every project"`
	Allowed     string        `envconfig:"GEMINI_MODELS_ALLOWED" desc:"models a job may name in \"model\" (default: the chain)"`
	Thinking    string        `envconfig:"GEMINI_THINKING" desc:"thinking per model family: 2.5=<budget>,3=<minimal|low|medium|high>; longest family prefix wins"`
	FlexTimeout time.Duration `envconfig:"GEMINI_TIMEOUT_FLEX" desc:"bound on one flex upstream call"`
	BaseURL     string        `envconfig:"GEMINI_BASE_URL" desc:"upstream base URL"`
	Timeout     time.Duration `envconfig:"GEMINI_TIMEOUT" desc:"bound on one upstream call"`
	Retries     int           `envconfig:"GEMINI_RETRIES" desc:"a job run makes min(GEMINI_RETRIES+1, 2 x keys) attempts"`
	RetryDelay  time.Duration `envconfig:"GEMINI_RETRY_DELAY" desc:"wait before switching to the next key"`
}

type JobEnv struct {
	MaxRetry  int           `envconfig:"JOB_MAX_RETRY" desc:"job-level retries after a whole run of attempts failed"`
	Timeout   time.Duration `envconfig:"JOB_TIMEOUT" desc:"bound on one job run"`
	Retention time.Duration `envconfig:"JOB_RETENTION" desc:"how long a finished job stays pollable"`
}

type APIEnv struct {
	Addr     string `envconfig:"API_ADDR" desc:"HTTP listen address"`
	MaxConns int    `envconfig:"API_MAX_CONNS" desc:"connections served at once; more wait in the kernel's backlog (bounds memory under a flood)"`
}

type WorkerEnv struct {
	Concurrency        int           `envconfig:"WORKER_CONCURRENCY" desc:"jobs in flight per worker"`
	JobRetryDelay      time.Duration `envconfig:"JOB_RETRY_DELAY" desc:"wait before a job's first retry; doubles each retry, up to 10m"`
	AlertURL           string        `envconfig:"ALERT_WEBHOOK_URL" desc:"gets a JSON {\"text\"} (Slack-compatible) when a key is disabled or leaked, the pool pauses or no key is usable; once per event and key an hour, fleet-wide; unset: no alerts"`
	TaskCheckInterval  time.Duration `envconfig:"WORKER_TASK_CHECK_INTERVAL" desc:"how often an idle worker asks Redis for a new job (a new job waits about half of it)"`
	WebhookConcurrency int           `envconfig:"WEBHOOK_CONCURRENCY" desc:"webhook deliveries in flight per worker, apart from the jobs"`
	WebhookEnv
}

type LogEnv struct {
	Level  string `envconfig:"LOG_LEVEL" desc:"debug, info, warn or error"`
	Format string `envconfig:"LOG_FORMAT" desc:"text or json"`
}

// logSettings is promoted to every config that embeds LogEnv.
func (l LogEnv) logSettings() LogEnv { return l }

func defaultRedisEnv() RedisEnv { return RedisEnv{URL: redisconn.DefaultURL} }

func defaultGeminiEnv() GeminiEnv {
	return GeminiEnv{Model: gemini.DefaultModels, Thinking: gemini.DefaultThinking, FlexTimeout: gemini.DefaultFlexTimeout,
		BaseURL: gemini.DefaultBaseURL, Timeout: gemini.DefaultTimeout,
		Retries: worker.DefaultRetries, RetryDelay: worker.DefaultRetryDelay}
}

func defaultJobEnv() JobEnv {
	return JobEnv{MaxRetry: api.DefaultJobMaxRetry, Timeout: api.DefaultJobTimeout, Retention: api.DefaultJobRetention}
}

func defaultAPIEnv() APIEnv { return APIEnv{Addr: api.DefaultAddr, MaxConns: api.DefaultMaxConns} }

func defaultWorkerEnv() WorkerEnv {
	return WorkerEnv{Concurrency: worker.DefaultConcurrency, JobRetryDelay: worker.DefaultJobRetryDelay,
		TaskCheckInterval: worker.DefaultTaskCheckInterval, WebhookConcurrency: worker.DefaultWebhookConcurrency}
}

func defaultLogEnv() LogEnv { return LogEnv{Level: "info", Format: "text"} }

func checkRedisURL(s string) error {
	if err := redisconn.Check(s); err != nil {
		return fmt.Errorf("REDIS_URL %w", err)
	}
	return nil
}

func (g GeminiEnv) validate() error {
	var errs []error
	if _, _, err := g.models(); err != nil {
		errs = append(errs, err)
	}
	if _, err := gemini.ParseThinking(g.Thinking); err != nil {
		errs = append(errs, fmt.Errorf("GEMINI_THINKING %w", err))
	}
	if g.FlexTimeout <= 0 {
		errs = append(errs, fmt.Errorf("GEMINI_TIMEOUT_FLEX must be positive, like 15m (got %s)", g.FlexTimeout))
	}
	if err := gemini.CheckBaseURL(g.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("GEMINI_BASE_URL %w", err))
	}
	if g.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("GEMINI_TIMEOUT must be positive, like 60s (got %s)", g.Timeout))
	}
	if g.Retries < 0 {
		errs = append(errs, fmt.Errorf("GEMINI_RETRIES must be 0 or more (got %d)", g.Retries))
	}
	if g.RetryDelay < 0 {
		errs = append(errs, fmt.Errorf("GEMINI_RETRY_DELAY must not be negative (got %s)", g.RetryDelay))
	}
	if g.APIKey != "" && g.APIKeyFile != "" {
		errs = append(errs, errors.New("set GEMINI_API_KEY or GEMINI_API_KEY_FILE, not both"))
	}
	if g.RPM < 0 || g.RPD < 0 {
		errs = append(errs, fmt.Errorf("GEMINI_RPM and GEMINI_RPD must be 0 (no limit) or more (got %d, %d)", g.RPM, g.RPD))
	}
	return errors.Join(errs...)
}

// retries maps GEMINI_RETRIES, where 0 means a single attempt, onto the
// handler's option, where 0 means the default.
func (g GeminiEnv) retries() int {
	if g.Retries == 0 {
		return worker.NoRetries
	}
	return g.Retries
}

func (j JobEnv) validate() error {
	var errs []error
	if j.MaxRetry < 0 {
		errs = append(errs, fmt.Errorf("JOB_MAX_RETRY must be 0 or more (got %d)", j.MaxRetry))
	}
	if err := api.CheckJobTimeout(j.Timeout); err != nil {
		errs = append(errs, fmt.Errorf("JOB_TIMEOUT: %w", err))
	}
	if j.Retention <= 0 {
		errs = append(errs, fmt.Errorf("JOB_RETENTION must be positive, like 24h (got %s)", j.Retention))
	}
	return errors.Join(errs...)
}

// maxRetry maps JOB_MAX_RETRY, where 0 means none, onto the API's option,
// where 0 means the default.
func (j JobEnv) maxRetry() int {
	if j.MaxRetry == 0 {
		return api.NoJobRetries
	}
	return j.MaxRetry
}

func (a APIEnv) validate() error {
	var errs []error
	if a.Addr == "" {
		errs = append(errs, errors.New("API_ADDR must not be empty (like :8080 or 127.0.0.1:8080)"))
	}
	if a.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("API_MAX_CONNS must be 1 or more (got %d)", a.MaxConns))
	}
	return errors.Join(errs...)
}

func (w WorkerEnv) validate() error {
	var errs []error
	if w.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("WORKER_CONCURRENCY must be 1 or more (got %d)", w.Concurrency))
	}
	if w.JobRetryDelay <= 0 {
		errs = append(errs, fmt.Errorf("JOB_RETRY_DELAY must be positive, like 15s (got %s)", w.JobRetryDelay))
	}
	if w.AlertURL != "" {
		if u, err := url.Parse(w.AlertURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Not quoted: a chat webhook URL is a secret of its own.
			errs = append(errs, errors.New("ALERT_WEBHOOK_URL must be an http(s) URL"))
		}
	}
	if w.WebhookConcurrency < 1 {
		errs = append(errs, fmt.Errorf("WEBHOOK_CONCURRENCY must be 1 or more (got %d)", w.WebhookConcurrency))
	}
	errs = append(errs, checkTaskCheckInterval(w.TaskCheckInterval), w.WebhookEnv.validate())
	return errors.Join(errs...)
}

func (l LogEnv) validate() error {
	var errs []error
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error (got %q)", l.Level))
	}
	if l.Format != "text" && l.Format != "json" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT must be text or json (got %q)", l.Format))
	}
	return errors.Join(errs...)
}

// models returns the chain (GEMINI_MODEL) and every model a job may name
// (GEMINI_MODELS_ALLOWED, default the chain), the chain's first.
func (g GeminiEnv) models() (chain, all []string, err error) {
	if chain, err = gemini.ParseModels(g.Model); err != nil {
		return nil, nil, fmt.Errorf("GEMINI_MODEL: %w", err)
	}
	all = append([]string(nil), chain...)
	if strings.TrimSpace(g.Allowed) == "" {
		return chain, all, nil
	}
	allowed, err := gemini.ParseModels(g.Allowed)
	if err != nil {
		return nil, nil, fmt.Errorf("GEMINI_MODELS_ALLOWED: %w", err)
	}
	for _, m := range allowed {
		if !slices.Contains(all, m) {
			all = append(all, m)
		}
	}
	return chain, all, nil
}
