package metrics

import "github.com/prometheus/client_golang/prometheus"

// Per-model worker collectors: tokens by kind and calls by outcome.
var (
	tokensTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "tokens_total",
		Help: "Tokens of billed Gemini answers seen by this worker, by model and kind (prompt, candidates, thoughts, cached; prompt includes cached).",
	}, []string{"model", "kind"})
	upstreamCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Subsystem: "upstream", Name: "calls_total",
		Help: "Gemini calls made by this worker, by model and outcome class (ok, or the failure's class).",
	}, []string{"model", "class"})
)

// ObserveTokens counts one answer's tokens for model.
func ObserveTokens(model string, prompt, candidates, thoughts, cached int) {
	for kind, n := range map[string]int{"prompt": prompt, "candidates": candidates, "thoughts": thoughts, "cached": cached} {
		if n > 0 {
			tokensTotal.WithLabelValues(model, kind).Add(float64(n))
		}
	}
}

// ObserveCall counts one upstream call to model that ended in class.
func ObserveCall(model, class string) { upstreamCalls.WithLabelValues(model, class).Inc() }
