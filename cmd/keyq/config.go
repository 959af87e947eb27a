package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// The environment is keyq's whole configuration; these names are a contract.
// Each section validates itself with messages that name the variable.

type RedisEnv struct {
	URL string `envconfig:"REDIS_URL" default:"redis://127.0.0.1:6379/0" desc:"Redis holding jobs and the key rotation; rediss:// for TLS, redis-sentinel://host:port,.../db?master=name; a password goes in the URL"`
}

type GeminiEnv struct {
	APIKey     string        `envconfig:"GEMINI_API_KEY" desc:"Gemini API keys separated by commas, each optionally project:KEY (worker needs this or GEMINI_API_KEY_FILE)"`
	APIKeyFile string        `envconfig:"GEMINI_API_KEY_FILE" desc:"file with the keys in the same syntax; re-read on SIGHUP and when it changes"`
	RPM        int           `envconfig:"GEMINI_RPM" default:"0" desc:"calls per minute allowed per project and model, fleet-wide (0 = no limit)"`
	RPD        int           `envconfig:"GEMINI_RPD" default:"0" desc:"calls per day (Pacific) allowed per project and model, fleet-wide (0 = no limit)"`
	Model      string        `envconfig:"GEMINI_MODEL" default:"gemini-2.5-flash" desc:"model name"`
	BaseURL    string        `envconfig:"GEMINI_BASE_URL" default:"https://generativelanguage.googleapis.com" desc:"upstream base URL"`
	Timeout    time.Duration `envconfig:"GEMINI_TIMEOUT" default:"60s" desc:"bound on one upstream call"`
	Retries    int           `envconfig:"GEMINI_RETRIES" default:"5" desc:"a job run makes min(GEMINI_RETRIES+1, 2 x keys) attempts"`
	RetryDelay time.Duration `envconfig:"GEMINI_RETRY_DELAY" default:"1s" desc:"wait before switching to the next key"`
}

type JobEnv struct {
	MaxRetry  int           `envconfig:"JOB_MAX_RETRY" default:"3" desc:"job-level retries after a whole run of attempts failed"`
	Timeout   time.Duration `envconfig:"JOB_TIMEOUT" default:"5m" desc:"bound on one job run"`
	Retention time.Duration `envconfig:"JOB_RETENTION" default:"24h" desc:"how long a finished job stays pollable"`
}

type APIEnv struct {
	Addr string `envconfig:"API_ADDR" default:":8080" desc:"HTTP listen address"`
}

type WorkerEnv struct {
	Concurrency   int           `envconfig:"WORKER_CONCURRENCY" default:"20" desc:"jobs in flight per worker"`
	JobRetryDelay time.Duration `envconfig:"JOB_RETRY_DELAY" default:"15s" desc:"wait before a job's first retry; doubles each retry, up to 10m"`
}

type LogEnv struct {
	Level  string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	Format string `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
}

type apiConfig struct {
	RedisEnv
	APIEnv
	JobEnv
	LogEnv
	APIAuthEnv
	DashboardEnv
	Model string `envconfig:"GEMINI_MODEL" default:"gemini-2.5-flash" desc:"model whose key pool /api/keys, /keys and /metrics show"`
}

type workerConfig struct {
	RedisEnv
	GeminiEnv
	WorkerEnv
	LogEnv
	MetricsEnv
}

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
	SimLatency     time.Duration `envconfig:"SIM_LATENCY" default:"2s" desc:"simulated Gemini: time to answer"`
	SimFailureRate float64       `envconfig:"SIM_FAILURE_RATE" default:"0.2" desc:"simulated Gemini: share of calls answered 503"`
}

func (c apiConfig) validate() error {
	return errors.Join(validateRedisURL(c.URL), c.APIEnv.validate(), c.JobEnv.validate(), c.LogEnv.validate())
}

func (c workerConfig) validate() error {
	var errs []error
	if strings.Trim(c.APIKey, " ,") == "" && c.APIKeyFile == "" {
		errs = append(errs, errors.New("GEMINI_API_KEY is required: one or more keys separated by commas (or GEMINI_API_KEY_FILE)"))
	}
	return errors.Join(append(errs, validateRedisURL(c.URL), c.GeminiEnv.validate(), c.WorkerEnv.validate(), c.LogEnv.validate())...)
}

func (c devConfig) validate() error {
	var errs []error
	if c.RedisURL != "" {
		errs = append(errs, validateRedisURL(c.RedisURL))
	}
	if c.SimLatency < 0 || c.SimFailureRate < 0 || c.SimFailureRate > 1 {
		errs = append(errs, errors.New("SIM_LATENCY must not be negative and SIM_FAILURE_RATE must be within 0..1"))
	}
	return errors.Join(append(errs, c.GeminiEnv.validate(), c.APIEnv.validate(), c.JobEnv.validate(), c.WorkerEnv.validate(), c.LogEnv.validate())...)
}

func validateRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "redis-sentinel") || u.Host == "" {
		// Never echo the URL: it may hold a password.
		return errors.New("REDIS_URL must look like redis://[:password@]host:port/db, rediss://... for TLS, " +
			"or redis-sentinel://[:password@]host:port[,host:port...]/db?master=name for Redis Sentinel")
	}
	if u.Scheme == "redis-sentinel" {
		if _, err := parseSentinelURL(s); err != nil {
			return errors.New("REDIS_URL: " + err.Error())
		}
	}
	return nil
}

func (g GeminiEnv) validate() error {
	var errs []error
	if strings.TrimSpace(g.Model) == "" {
		errs = append(errs, errors.New("GEMINI_MODEL must not be empty"))
	}
	if u, err := url.Parse(g.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		errs = append(errs, fmt.Errorf("GEMINI_BASE_URL must be an http(s) URL without a query (got %q)", g.BaseURL))
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

func (j JobEnv) validate() error {
	var errs []error
	if j.MaxRetry < 0 {
		errs = append(errs, fmt.Errorf("JOB_MAX_RETRY must be 0 or more (got %d)", j.MaxRetry))
	}
	if j.Timeout < time.Second {
		errs = append(errs, fmt.Errorf("JOB_TIMEOUT must be 1s or more, like 5m (got %s)", j.Timeout))
	}
	if j.Retention <= 0 {
		errs = append(errs, fmt.Errorf("JOB_RETENTION must be positive, like 24h (got %s)", j.Retention))
	}
	return errors.Join(errs...)
}

func (a APIEnv) validate() error {
	if a.Addr == "" {
		return errors.New("API_ADDR must not be empty (like :8080 or 127.0.0.1:8080)")
	}
	return nil
}

func (w WorkerEnv) validate() error {
	var errs []error
	if w.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("WORKER_CONCURRENCY must be 1 or more (got %d)", w.Concurrency))
	}
	if w.JobRetryDelay <= 0 {
		errs = append(errs, fmt.Errorf("JOB_RETRY_DELAY must be positive (got %s)", w.JobRetryDelay))
	}
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
