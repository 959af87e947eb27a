package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyq/keyq/usage"
)

// Cap is one API token's daily allowance (Pacific day), in tokens and/or
// estimated USD; 0 means no limit of that kind.
type Cap struct {
	Tokens int64
	USD    float64
}

// Caps maps a token id (TokenID) to its cap; "*" is the cap of every
// token without one of its own.
type Caps map[string]Cap

// ParseCaps reads API_TOKEN_CAPS: comma-separated id=limit, the id a
// token's TokenID (16 hex digits, never the token) or *, the limit
// 100000tok or 2.50usd; an id may appear once per kind.
func ParseCaps(s string) (Caps, error) {
	caps := Caps{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, limit, ok := strings.Cut(item, "=")
		id, limit = strings.TrimSpace(id), strings.ToLower(strings.TrimSpace(limit))
		if !ok || (id != "*" && (len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "")) {
			return nil, fmt.Errorf("%q: each entry is <token id>=<limit>, the id 16 hex digits (sha256 of the token, cut) or *", item)
		}
		c := caps[id]
		if n, ok := strings.CutSuffix(limit, "tok"); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("%q: a token limit is a positive whole number, like 100000tok", item)
			}
			c.Tokens = v
		} else if n, ok := strings.CutSuffix(limit, "usd"); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%q: a cost limit is a positive amount, like 2.50usd", item)
			}
			c.USD = v
		} else {
			return nil, fmt.Errorf("%q: the limit ends in tok or usd, like 100000tok or 2.50usd", item)
		}
		caps[id] = c
	}
	return caps, nil
}

func (c Caps) of(id string) (Cap, bool) {
	if v, ok := c[id]; ok {
		return v, true
	}
	v, ok := c["*"]
	return v, ok
}

// checkCap answers 429 quota_exceeded when the caller's token has spent
// its daily cap; the open API (no token) has none.
func (s *Server) checkCap(w http.ResponseWriter, r *http.Request) error {
	owner := ownerOf(r)
	c, ok := s.models.caps.of(owner)
	if owner == "" || !ok || s.models.usage == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	u := s.models.usage
	rows, err := u.Query(ctx, u.Today(), u.Today(), usage.ByToken, s.models.prices, func(g string) bool { return g == owner })
	if err != nil || len(rows) == 0 {
		return nil // unreachable usage must not stop jobs; a 503 comes from the enqueue
	}
	used := rows[0]
	var over string
	switch {
	case c.Tokens > 0 && used.Counts[usage.KindTotal] >= c.Tokens:
		over = fmt.Sprintf("%d of its %d tokens", used.Counts[usage.KindTotal], c.Tokens)
	case c.USD > 0 && used.CostUSD >= c.USD:
		over = fmt.Sprintf("an estimated $%.4f of its $%.2f", used.CostUSD, c.USD)
	default:
		return nil
	}
	now := time.Now().In(pacificTZ)
	midnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, pacificTZ)
	w.Header().Set("Retry-After", strconv.Itoa(int(time.Until(midnight).Seconds())+1))
	return &Error{Code: CodeQuotaExceeded, Message: fmt.Sprintf("token %s has used %s today (Pacific); new jobs are refused until midnight America/Los_Angeles (%s)",
		owner, over, midnight.UTC().Format(time.RFC3339))}
}

var pacificTZ, _ = time.LoadLocation("America/Los_Angeles") // keyring embeds tzdata
