package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyq/keyq/keyring"
)

var errNoKeyAdmin = &Error{Code: CodeNotFound, Message: "this server has no view of the key pool"}

// getKeys answers GET /api/keys: one page of one model's keys (index,
// fingerprint, project, state, counts, tokens today; never a key),
// filtered by ?state= and ?project=, ?limit= (default 100, at most 1000)
// a page, ?cursor= the next, ?model= the pool (default the first).
func (s *Server) getKeys(w http.ResponseWriter, r *http.Request) error {
	model, keys, models, err := s.modelKeys(r)
	if err != nil {
		return err
	}
	q, err := keysQuery(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	page, err := keys.Page(ctx, q)
	if err != nil {
		return redisErr(err)
	}
	st, err := s.withUsage(ctx, model, page.Keys)
	if err != nil {
		return redisErr(err)
	}
	writeJSON(w, http.StatusOK, struct {
		Model  string      `json:"model,omitempty"`
		Models []string    `json:"models,omitempty"`
		Keys   []keyStatus `json:"keys"`
		Next   string      `json:"next,omitempty"`
	}{model, models, st, page.Next})
	return nil
}

func keysQuery(r *http.Request) (keyring.Query, error) {
	v := r.URL.Query()
	q := keyring.Query{State: keyring.State(v.Get("state")), Project: v.Get("project"), Cursor: v.Get("cursor")}
	switch q.State {
	case "", keyring.StateReady, keyring.StateCooling, keyring.StateDisabled:
	default:
		return q, &Error{Code: CodeInvalidRequest, Field: "state", Message: "state must be ready, cooling or disabled"}
	}
	if q.Cursor != "" && !digits(q.Cursor) {
		return q, &Error{Code: CodeInvalidRequest, Field: "cursor", Message: "cursor must be the next value of the page before"}
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxKeysPage {
			return q, &Error{Code: CodeInvalidRequest, Field: "limit", Message: fmt.Sprintf("limit must be 1 to %d", maxKeysPage)}
		}
		q.Limit = n
	}
	return q, nil
}

// maxKeysPage is the largest page of GET /api/keys.
const maxKeysPage = 1000

func digits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) > 0 && len(s) < 10
}

// getKeysSummary answers GET /api/keys/summary: keys by state, and per
// project the keys by state, calls this minute and today against the
// budgets, and when the day's quota resets.
func (s *Server) getKeysSummary(w http.ResponseWriter, r *http.Request) error {
	_, keys, _, err := s.modelKeys(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	sum, err := keys.Summary(ctx)
	if err != nil {
		return redisErr(err)
	}
	writeJSON(w, http.StatusOK, sum)
	return nil
}

// postKeyAction answers POST /api/keys/{fingerprint}/disable and /enable:
// take a key out of rotation without deleting it, and put it back.
func (s *Server) postKeyAction(w http.ResponseWriter, r *http.Request) error {
	if s.keys == nil {
		return errNoKeyAdmin
	}
	fp, action := r.PathValue("fingerprint"), r.PathValue("action")
	if err := s.keyAction(r.Context(), fp, action, "disabled by an operator"); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"fingerprint": fp, "status": action + "d"})
	return nil
}

// keyAction disables or enables the key with fingerprint fp.
func (s *Server) keyAction(ctx context.Context, fp, action, reason string) error {
	if s.keys == nil {
		return errNoKeyAdmin
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	var err error
	switch action {
	case "disable":
		err = s.keys.Disable(ctx, fp, reason)
	case "enable":
		err = s.keys.Enable(ctx, fp)
	default:
		return &Error{Code: CodeNotFound, Message: "the key actions are disable and enable"}
	}
	if errors.Is(err, keyring.ErrUnknownKey) {
		return &Error{Code: CodeNotFound, Message: "no key with fingerprint " + strings.ToValidUTF8(fp[:min(len(fp), 64)], "?")}
	}
	if err != nil {
		return redisErr(err)
	}
	return nil
}
