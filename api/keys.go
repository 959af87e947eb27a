package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/keyq/keyq/keyring"
)

var errNoKeyAdmin = &Error{Code: CodeNotFound, Message: "this server has no view of the key pool"}

// getKeys answers GET /api/keys: every key's index, fingerprint, project,
// state and counts. Never a key.
func (s *Server) getKeys(w http.ResponseWriter, r *http.Request) error {
	if s.keys == nil {
		return errNoKeyAdmin
	}
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	st, err := s.keys.Statuses(ctx)
	if err != nil {
		return redisErr(err)
	}
	writeJSON(w, http.StatusOK, map[string][]keyring.Status{"keys": st})
	return nil
}

// postKeyAction answers POST /api/keys/{fingerprint}/disable and /enable:
// take a key out of rotation without deleting it, and put it back.
func (s *Server) postKeyAction(w http.ResponseWriter, r *http.Request) error {
	if s.keys == nil {
		return errNoKeyAdmin
	}
	fp, action := r.PathValue("fingerprint"), r.PathValue("action")
	ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
	defer cancel()
	var err error
	switch action {
	case "disable":
		err = s.keys.Disable(ctx, fp, "disabled by an operator")
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
	writeJSON(w, http.StatusOK, map[string]string{"fingerprint": fp, "status": action + "d"})
	return nil
}
