package api

import (
	"cmp"
	"context"
	"net/http"

	"github.com/keyq/keyq/usage"
)

// usageAnswer is GET /api/usage's answer.
type usageAnswer struct {
	From  string      `json:"from"`
	To    string      `json:"to"`
	By    string      `json:"by"`
	Rows  []usage.Row `json:"rows"`
	Total usage.Row   `json:"total"`
	// Prices are the table the costs were estimated with (USD per
	// million tokens); a row's priced is false when a model lacks one.
	Prices usage.Prices `json:"prices"`
}

// getUsage answers GET /api/usage?from=&to=&by=: tokens and estimated
// cost, summed over Pacific days from..to (default today), grouped by
// model, project, key (fingerprint), token (API token id; "-" the open
// API) or day.
func (s *Server) getUsage(w http.ResponseWriter, r *http.Request) error {
	u := s.models.usage
	if u == nil {
		return &Error{Code: CodeNotFound, Message: "this server keeps no usage"}
	}
	q := r.URL.Query()
	a := usageAnswer{From: cmp.Or(q.Get("from"), u.Today()), By: cmp.Or(q.Get("by"), usage.ByModel), Prices: s.models.prices}
	a.To = cmp.Or(q.Get("to"), a.From)
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	rows, err := u.Query(ctx, a.From, a.To, a.By, s.models.prices, nil)
	if err != nil {
		if ctx.Err() != nil {
			return redisErr(err)
		}
		return &Error{Code: CodeInvalidRequest, Message: err.Error()}
	}
	a.Rows = rows
	a.Total = usage.Row{Group: "total", Counts: usage.Counts{}, Priced: true}
	for _, row := range rows {
		for k, n := range row.Counts {
			a.Total.Counts[k] += n
		}
		a.Total.CostUSD += row.CostUSD
		a.Total.Priced = a.Total.Priced && row.Priced
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}
