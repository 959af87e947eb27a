package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/keyq/keyq/api"
)

// The operations side of the configuration: who may call the API, the
// operator pages, the worker's metrics. Embedded in apiConfig, devConfig
// and workerConfig (config.go); checked where they are used, so that a bad
// value exits 2 naming the variable.

type APIAuthEnv struct {
	Tokens      string `envconfig:"API_TOKENS" desc:"bearer tokens for /api/*, separated by commas; unset: /api/* is OPEN (key admin actions are then refused)"`
	CORSOrigins string `envconfig:"API_CORS_ORIGINS" desc:"origins a browser may call /api/* from, separated by commas (https://app.example.com), or *; unset: no CORS"`
	ClientsEnv
}

type DashboardEnv struct {
	DashboardPassword string `envconfig:"DASHBOARD_PASSWORD" desc:"turns on /monitoring/ (asynqmon) and /keys behind HTTP basic auth; unset: neither is served"`
	DashboardUser     string `envconfig:"DASHBOARD_USER" desc:"basic-auth user of /monitoring/ and /keys"`
	DashboardReadOnly bool   `envconfig:"DASHBOARD_READONLY" desc:"false lets /monitoring/ pause queues and delete, run or archive tasks"`
}

type MetricsEnv struct {
	WorkerMetricsAddr string `envconfig:"WORKER_METRICS_ADDR" desc:"where a worker serves Prometheus /metrics; empty or off: nowhere"`
}

func defaultDashboardEnv() DashboardEnv {
	return DashboardEnv{DashboardUser: api.DefaultDashboardUser, DashboardReadOnly: true}
}

func defaultMetricsEnv() MetricsEnv { return MetricsEnv{WorkerMetricsAddr: ":9090"} }

// placeholder reports a value copied from .env.example and never changed.
func placeholder(v string) bool { return strings.Contains(strings.ToLower(v), "change-me") }

func (a APIAuthEnv) validate() error {
	var errs []error
	if err := api.CheckCORSOrigins(splitList(a.CORSOrigins)); err != nil {
		errs = append(errs, fmt.Errorf("API_CORS_ORIGINS: %w", err))
	}
	for i, t := range splitList(a.Tokens) {
		if placeholder(t) {
			errs = append(errs, fmt.Errorf("API_TOKENS: token %d is the placeholder from .env.example; use a long random token (openssl rand -hex 32)", i+1))
		}
	}
	errs = append(errs, a.ClientsEnv.validate())
	return errors.Join(errs...)
}

func (d DashboardEnv) validate() error {
	if d.DashboardPassword == "" {
		return nil
	}
	var errs []error
	if d.DashboardUser == "" {
		errs = append(errs, errors.New("DASHBOARD_USER must not be empty (default "+api.DefaultDashboardUser+")"))
	} else if err := d.dashboard().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("DASHBOARD_USER: %w", err))
	}
	if placeholder(d.DashboardPassword) {
		errs = append(errs, errors.New("DASHBOARD_PASSWORD is the placeholder from .env.example; choose a real password"))
	}
	return errors.Join(errs...)
}

func (d DashboardEnv) dashboard() api.Dashboard {
	return api.Dashboard{Password: d.DashboardPassword, User: d.DashboardUser, Writable: !d.DashboardReadOnly}
}

// splitList splits a comma-separated variable, trimming spaces and
// dropping empties.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
