package usage

import (
	"fmt"
	"strconv"
	"strings"
)

// Price is a model's standard price in USD per million tokens. Thinking
// tokens are billed as output; cached input at the cached rate. Flex is
// half of each.
type Price struct {
	Input, Output, Thinking, Cached float64
}

// Prices maps a model name to its price.
type Prices map[string]Price

// DefaultPrices is the price table used when GEMINI_PRICES is unset: paid
// tier, standard, prompts up to 200k tokens, as Google's pricing page
// (ai.google.dev/gemini-api/docs/pricing) was transcribed by the sources
// the README names, read 2026-11-28. Check them before relying on a cost.
const DefaultPrices = "gemini-3.5-flash=1.50/9.00/9.00/0.15,gemini-3.1-flash-lite=0.25/1.50/1.50/0.025,gemini-2.5-flash=0.30/2.50/2.50/0.03"

// ParsePrices reads model=input/output/thinking/cached entries separated
// by commas (USD per million tokens).
func ParsePrices(s string) (Prices, error) {
	p := Prices{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		model, list, ok := strings.Cut(item, "=")
		nums := strings.Split(list, "/")
		if !ok || strings.TrimSpace(model) == "" || len(nums) != 4 {
			return nil, fmt.Errorf("%q: each entry is model=input/output/thinking/cached in USD per million tokens", item)
		}
		var v [4]float64
		for i, n := range nums {
			f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
			if err != nil || f < 0 {
				return nil, fmt.Errorf("%q: %q is not a price", item, n)
			}
			v[i] = f
		}
		p[strings.TrimSpace(model)] = Price{Input: v[0], Output: v[1], Thinking: v[2], Cached: v[3]}
	}
	return p, nil
}

// cost is what n tokens of kind cost on model and tier; false when the
// model has no price. Prompt tokens include cached ones: the cached
// share is charged at the cached rate instead of the input rate.
func (p Prices) cost(model, tier, kind string, n int64) (float64, bool) {
	pr, ok := p[model]
	if !ok {
		return 0, kind == KindCalls || kind == KindTotal
	}
	var per float64
	switch kind {
	case KindPrompt:
		per = pr.Input
	case KindCandidates:
		per = pr.Output
	case KindThoughts:
		per = pr.Thinking
	case KindCached:
		per = pr.Cached - pr.Input
	}
	if tier == "flex" {
		per /= 2
	}
	return float64(n) * per / 1e6, true
}
