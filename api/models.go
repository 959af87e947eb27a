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

// modelKeys picks the pool of ?model= (default: the first of the chain)
// and lists the models; with no models configured, the one Options.Keys.
func (s *Server) modelKeys(r *http.Request) (name string, keys KeyAdmin, names []string, err error) {
	if len(s.models.models) == 0 {
		if s.keys == nil {
			return "", nil, nil, errNoKeyAdmin
		}
		return s.pool, s.keys, nil, nil
	}
	want := r.URL.Query().Get("model")
	for i, m := range s.models.models {
		names = append(names, m.Name)
		if m.Name == want || want == "" && i == 0 {
			name, keys = m.Name, m.Keys
		}
	}
	if keys == nil {
		return "", nil, names, &Error{Code: CodeInvalidRequest, Field: "model", Message: fmt.Sprintf("no key pool for model %q; the models are %s", want, strings.Join(names, ", "))}
	}
	return name, keys, names, nil
}

// withUsage adds each key's tokens of today on model to a page of keys.
func (s *Server) withUsage(ctx context.Context, model string, st []keyring.Status) ([]keyStatus, error) {
	used := map[string]usage.Row{}
	if u := s.models.usage; u != nil && len(st) > 0 {
		rows, err := u.QueryModel(ctx, u.Today(), usage.ByKey, model, s.models.prices)
		if err != nil {
			return nil, err
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
	return out, nil
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
