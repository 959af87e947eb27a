package metrics

import (
	"net/http"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric of keyq's own ("keyq_..."); asynq's queue
// metrics keep theirs ("asynq_...").
const Namespace = "keyq"

// NewRegistry returns a registry holding the Go runtime and process
// collectors and cs. It fails if two collectors export the same metric.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	all := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, cs...)
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// Handler serves g in Prometheus' text format. A collector that fails
// (Redis down during a scrape) costs its own metrics, not the whole answer.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// NewQueueCollector exports asynq's queue metrics (size, latency, memory,
// processed and failed counts, paused) read through inspector on each
// scrape. One per fleet is enough: the API serves it, workers do not.
func NewQueueCollector(inspector *asynq.Inspector) prometheus.Collector {
	return asynqmetrics.NewQueueMetricsCollector(inspector)
}
