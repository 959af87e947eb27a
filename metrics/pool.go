package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyq/keyq/keyring"
)

// SummarySource gives the pool at a glance: keyring.Admin.Summary.
type SummarySource interface {
	Summary(ctx context.Context) (keyring.Summary, error)
}

// PoolCollector exports the key pool by state and by project, read from
// Redis on each scrape (one Summary). Its series grow with the number of
// projects, not keys: keyq_keys{pool,state} (3), keyq_project_keys
// {pool,project,state} (3 a project), keyq_project_quota_used_ratio (1 or 2
// a project with budgets), keyq_pool_paused. Every state is exported, 0
// included, so that "no key ready" can be alerted on.
type PoolCollector struct {
	src     SummarySource
	pool    string
	timeout time.Duration

	keys, projectKeys, quota, paused *prometheus.Desc
}

// NewPoolCollector reads src, the pool named pool (the model), on each
// scrape, giving it up to timeout (default 3s).
func NewPoolCollector(src SummarySource, pool string, timeout time.Duration) *PoolCollector {
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	name := func(sub, n string) string { return prometheus.BuildFQName(Namespace, sub, n) }
	// The pool is a constant label: one collector per pool (model), and
	// the pools of several models share a registry.
	pl := prometheus.Labels{"pool": pool}
	return &PoolCollector{
		src: src, pool: pool, timeout: timeout,
		keys:        prometheus.NewDesc(name("", "keys"), "Keys of the pool in each state (ready, cooling, disabled), fleet-wide.", []string{"state"}, pl),
		projectKeys: prometheus.NewDesc(name("project", "keys"), "Keys of each project in each state, fleet-wide.", []string{"project", "state"}, pl),
		quota:       prometheus.NewDesc(name("project", "quota_used_ratio"), "Calls this minute / GEMINI_RPM and today (Pacific) / GEMINI_RPD, per project; absent without a budget.", []string{"project", "window"}, pl),
		paused:      prometheus.NewDesc(name("pool", "paused"), "1 while the whole pool rests after a 429 storm.", nil, pl),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.keys, c.projectKeys, c.quota, c.paused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A failed read yields an invalid
// metric rather than stale numbers.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s, err := c.src.Summary(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.keys, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	for _, st := range keyStates {
		gauge(c.keys, float64(s.States[st]), string(st))
	}
	paused := 0.0
	if s.PausedUntil != nil {
		paused = 1
	}
	gauge(c.paused, paused)
	for _, p := range s.Projects {
		for _, st := range keyStates {
			gauge(c.projectKeys, float64(p.States[st]), p.Project, string(st))
		}
		if p.RPM > 0 {
			gauge(c.quota, float64(p.CallsThisMinute)/float64(p.RPM), p.Project, "minute")
		}
		if p.RPD > 0 {
			gauge(c.quota, float64(p.CallsToday)/float64(p.RPD), p.Project, "day")
		}
	}
}
