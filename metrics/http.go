package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyq/keyq/internal/httpx"
)

// HTTP measures an HTTP server's requests by route (the ServeMux pattern
// that answered, never the raw path, so that ids do not make new series),
// method and status code. It is a prometheus.Collector.
type HTTP struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// NewHTTP makes the request metrics; register it, and wrap the server's
// ServeMux with Middleware.
func NewHTTP() *HTTP {
	return &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
}

// Describe implements prometheus.Collector.
func (h *HTTP) Describe(ch chan<- *prometheus.Desc) {
	h.requests.Describe(ch)
	h.seconds.Describe(ch)
}

// Collect implements prometheus.Collector.
func (h *HTTP) Collect(ch chan<- prometheus.Metric) {
	h.requests.Collect(ch)
	h.seconds.Collect(ch)
}

// Middleware measures every request next answers. next should be (or end
// in) an http.ServeMux, which records the pattern it matched in the
// request; a request no pattern matched counts as route "unmatched".
func (h *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cw := httpx.NewStatusWriter(w)
		next.ServeHTTP(cw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m := method(r.Method)
		h.requests.WithLabelValues(route, m, strconv.Itoa(cw.Status)).Inc()
		h.seconds.WithLabelValues(route, m).Observe(time.Since(start).Seconds())
	})
}

// method keeps the label's values to the methods HTTP defines, so that a
// client cannot make new series by inventing methods.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
