package main

import (
	"strings"
)

// The operations side of the configuration: who may call the API, the
// operator pages, the worker's metrics. Embedded in apiConfig, devConfig
// and workerConfig (config.go); checked where they are used, so that a bad
// value exits 2 naming the variable.

type APIAuthEnv struct {
	Tokens      string `envconfig:"API_TOKENS" desc:"bearer tokens for /api/*, separated by commas; unset: /api/* is OPEN (key admin actions are then refused)"`
	CORSOrigins string `envconfig:"API_CORS_ORIGINS" desc:"origins a browser may call /api/* from, separated by commas (https://app.example.com), or *; unset: no CORS"`
}

type DashboardEnv struct {
	DashboardPassword string `envconfig:"DASHBOARD_PASSWORD" desc:"turns on /monitoring/ (asynqmon) and /keys behind HTTP basic auth; unset: neither is served"`
	DashboardUser     string `envconfig:"DASHBOARD_USER" default:"admin" desc:"basic-auth user of /monitoring/ and /keys"`
	DashboardReadOnly bool   `envconfig:"DASHBOARD_READONLY" default:"true" desc:"false lets /monitoring/ pause queues and delete, run or archive tasks"`
}

type MetricsEnv struct {
	WorkerMetricsAddr string `envconfig:"WORKER_METRICS_ADDR" default:":9090" desc:"where a worker serves Prometheus /metrics; empty or off: nowhere"`
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
