package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyq/keyq/keyring"
)

// StatusSource reports every key's state and counts: keyring's admin view,
// the same one the API serves at /api/keys.
type StatusSource interface {
	Statuses(ctx context.Context) ([]keyring.Status, error)
}

// keyStates are the values of keyq_key_state's state label.
var keyStates = []keyring.State{keyring.StateReady, keyring.StateCooling, keyring.StateDisabled}

// KeyCollector exports the pool's per-key counters and state, read from a
// StatusSource on each scrape. Labels: index, fingerprint, project; never
// the key. Its series grow with the pool (5 or more a key): it is opt-in
// (METRICS_PER_KEY); PoolCollector is the bounded default.
type KeyCollector struct {
	src     StatusSource
	timeout time.Duration

	picks, successes, failures, state, until *prometheus.Desc
}

// NewKeyCollector reads src on each scrape, giving it up to timeout
// (default 3s).
func NewKeyCollector(src StatusSource, timeout time.Duration) *KeyCollector {
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	labels := []string{"index", "fingerprint", "project"}
	// A source that names its model (one pool per model) labels its series
	// with it, so that the pools of several models share one registry.
	var constLabels prometheus.Labels
	if m, ok := src.(interface{ Model() string }); ok {
		constLabels = prometheus.Labels{"model": m.Model()}
	}
	name := func(n string) string { return prometheus.BuildFQName(Namespace, "key", n) }
	return &KeyCollector{
		src:       src,
		timeout:   timeout,
		picks:     prometheus.NewDesc(name("picks_total"), "Times the key was picked from the shared rotation, fleet-wide.", labels, constLabels),
		successes: prometheus.NewDesc(name("successes_total"), "Upstream calls with the key that succeeded, fleet-wide.", labels, constLabels),
		failures:  prometheus.NewDesc(name("failures_total"), "Upstream calls with the key that failed, by failure class, fleet-wide.", append(labels, "class"), constLabels),
		state:     prometheus.NewDesc(name("state"), "1 for the key's current state (ready, cooling or disabled), 0 for the others.", append(labels, "state"), constLabels),
		until:     prometheus.NewDesc(name("state_until_timestamp_seconds"), "When the key's cooldown ends, or when a disabled key is probed next (Unix time).", labels, constLabels),
	}
}

// Describe implements prometheus.Collector.
func (c *KeyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.picks, c.successes, c.failures, c.state, c.until} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. A failed read yields an invalid
// metric, which the scrape reports, rather than stale numbers.
func (c *KeyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	sts, err := c.src.Statuses(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.picks, err)
		return
	}
	for _, s := range sts {
		lv := []string{strconv.Itoa(s.Index), s.Fingerprint, s.Project}
		ch <- prometheus.MustNewConstMetric(c.picks, prometheus.CounterValue, float64(s.Picks), lv...)
		ch <- prometheus.MustNewConstMetric(c.successes, prometheus.CounterValue, float64(s.Successes), lv...)
		for class, n := range s.Failures {
			ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(n), append(lv, class)...)
		}
		for _, st := range keyStates {
			v := 0.0
			if s.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, append(lv, string(st))...)
		}
		if s.Until != nil {
			ch <- prometheus.MustNewConstMetric(c.until, prometheus.GaugeValue, float64(s.Until.UnixNano())/1e9, lv...)
		}
	}
}
