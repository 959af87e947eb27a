// Package faketest starts geminifake's upstream for tests. It lives apart
// from geminifake so that the fake, which keyq's binary serves in `keyq
// dev` and `keyq fake`, links neither testing nor httptest.
package faketest

import (
	"net/http/httptest"
	"testing"

	"github.com/keyq/keyq/gemini/geminifake"
)

// Start serves a new Upstream on a local httptest server, closed by
// tb.Cleanup, and returns it with its base URL.
func Start(tb testing.TB, opts geminifake.Options) (*geminifake.Upstream, string) {
	tb.Helper()
	u := geminifake.New(opts)
	srv := httptest.NewServer(u)
	tb.Cleanup(srv.Close)
	return u, srv.URL
}
