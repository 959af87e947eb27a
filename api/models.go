package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyq/keyq/keyring"
	"github.com/keyq/keyq/tasks"
	"github.com/keyq/keyq/usage"
)

// This file holds what the model, usage and cap features add to the
// server (Options.Models ...), and GET /api/keys?model=.

// DefaultJobTimeoutFlex bounds one run of a flex job: Google answers flex
// calls within 1 to 15 minutes.
const DefaultJobTimeoutFlex = 30 * time.Minute

// ModelKeys is one model's key pool as the API sees it.
type ModelKeys struct {
	Name string
	Keys KeyAdmin
}

// modelsExt is the server's state for models, usage and caps.
type modelsExt struct {
	models      []ModelKeys // the chain first; Options.Keys is models[0]
	allowed     []string
	flexTimeout time.Duration
	usage       *usage.Store
	prices      usage.Prices
	caps        Caps
}

func newModelsExt(o Options) modelsExt {
	allowed := o.AllowedModels
	if len(allowed) == 0 {
		for _, m := range o.Models {
			allowed = append(allowed, m.Name)
		}
	}
	return modelsExt{models: o.Models, allowed: allowed, flexTimeout: cmpDur(o.JobTimeoutFlex, DefaultJobTimeoutFlex),
		usage: o.Usage, prices: o.Prices, caps: o.Caps}
}

func cmpDur(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// keyStatus is a key of GET /api/keys, with its tokens of today (Pacific)
// on that model when usage is recorded.
type keyStatus struct {
	keyring.Status
	UsageToday *usage.Row `json:"usage_today,omitempty"`
}

// getModelKeys answers GET /api/keys?model=: one model's pool (default the
// first of the chain), the list of models, and each key's usage today.
func (s *Server) getModelKeys(w http.ResponseWriter, r *http.Request) error {
	if len(s.models.models) == 0 {
		return s.getKeys(w, r)
	}
	name := r.URL.Query().Get("model")
	var names []string
	var mk *ModelKeys
	for i, m := range s.models.models {
		names = append(names, m.Name)
		if m.Name == name || name == "" && i == 0 {
			mk = &s.models.models[i]
		}
	}
	if mk == nil {
		return &Error{Code: CodeInvalidRequest, Field: "model", Message: fmt.Sprintf("no key pool for model %q; the models are %s", name, strings.Join(names, ", "))}
	}
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	st, err := mk.Keys.Statuses(ctx)
	if err != nil {
		return redisErr(err)
	}
	used := map[string]usage.Row{}
	if u := s.models.usage; u != nil {
		rows, err := u.QueryModel(ctx, u.Today(), usage.ByKey, mk.Name, s.models.prices)
		if err != nil {
			return redisErr(err)
		}
		for _, row := range rows {
			used[row.Group] = row
		}
	}
	out := make([]keyStatus, len(st))
	for i, k := range st {
		out[i].Status = k
		if row, ok := used[k.Fingerprint]; ok {
			out[i].UsageToday = &row
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": mk.Name, "models": names, "keys": out})
	return nil
}

// checkJobOptions wraps a job route: before it reads the body, the job's
// "model" must be allowed and its "tier" known (400 naming the allowed
// ones), and the caller's daily cap must not be spent (429). The body is
// handed on unread.
func (s *Server) checkJobOptions(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := s.checkCap(w, r); err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return jsonError(err)
		}
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		var o tasks.JobOptions
		if len(body) <= maxBody && json.Unmarshal(body, &o) == nil {
			if err := o.Validate(); err != nil {
				return err
			}
			if len(s.models.allowed) > 0 && !slices.Contains(s.models.allowed, o.Model) && o.Model != "" {
				return o.CheckModel(s.models.allowed)
			}
		}
		return next(w, r)
	}
}
