package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
)

// A job belongs to the API token that made it: its owner is the token's
// id, the first 16 hex digits of the token's SHA-256, which names a token
// without revealing it (in Redis, task headers, logs and metrics). With no
// API_TOKENS the API is open and jobs have no owner ("").

type ownerKey struct{}

// TokenID names a token without revealing it.
func TokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

// withOwner records the caller's token id in the request's context.
func withOwner(r *http.Request, token string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), ownerKey{}, TokenID(token)))
}

// ownerOf is the id of the token that made the request, or "" when the API
// is open.
func ownerOf(r *http.Request) string {
	id, _ := r.Context().Value(ownerKey{}).(string)
	return id
}
