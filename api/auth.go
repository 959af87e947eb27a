package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// secrets is a set of tokens or passwords kept as SHA-256 digests. A
// candidate is hashed and compared with every digest in constant time, so
// neither the time taken nor a length mismatch tells anything about a
// secret, and the set never holds a secret in the clear.
type secrets [][sha256.Size]byte

func newSecrets(list []string) secrets {
	var s secrets
	for _, v := range list {
		if v = strings.TrimSpace(v); v != "" {
			s = append(s, sha256.Sum256([]byte(v)))
		}
	}
	return s
}

// match reports whether candidate is one of the secrets; it compares with
// all of them, whichever matches.
func (s secrets) match(candidate string) bool {
	d := sha256.Sum256([]byte(candidate))
	ok := 0
	for i := range s {
		ok |= subtle.ConstantTimeCompare(d[:], s[i][:])
	}
	return ok == 1
}

// Auth failures. Their messages say how to get in, never what was sent.
var (
	errNoToken = &Error{Code: CodeUnauthorized,
		Message: "this API needs a bearer token: send Authorization: Bearer <one of API_TOKENS>"}
	errBadToken = &Error{Code: CodeUnauthorized,
		Message: "the bearer token is not one of API_TOKENS"}
	errAdminNeedsTokens = &Error{Code: CodeForbidden,
		Message: "key admin actions always need a bearer token, and this server has none: set API_TOKENS on keyq api, then send Authorization: Bearer <token>"}
	errDashboardAuth = &Error{Code: CodeUnauthorized,
		Message: "the dashboard needs HTTP basic auth: user DASHBOARD_USER, password DASHBOARD_PASSWORD"}
)

// guard puts a route behind its access check.
func (s *Server) guard(a access, h http.Handler) http.Handler {
	if a == public || a == bearer && len(s.tokens) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err *Error
		if a == operator {
			if !s.operatorOK(r) {
				w.Header().Set("WWW-Authenticate", `Basic realm="keyq dashboard", charset="UTF-8"`)
				err = errDashboardAuth
			}
		} else if err = s.checkBearer(w, r, a); err == nil {
			tok, _ := bearerToken(r)
			r = withOwner(r, tok)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// checkBearer checks the request's bearer token for a bearer or admin
// route, setting WWW-Authenticate when it refuses.
func (s *Server) checkBearer(w http.ResponseWriter, r *http.Request, a access) *Error {
	if a == admin && len(s.tokens) == 0 {
		return errAdminNeedsTokens
	}
	tok, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyq"`)
		return errNoToken
	}
	if !s.tokens.match(tok) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="keyq", error="invalid_token"`)
		return errBadToken
	}
	return nil
}

// bearerToken reads "Authorization: Bearer <token>"; the scheme's case does
// not matter (RFC 9110).
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// operatorOK checks the dashboard's basic auth; user and password are both
// compared, in constant time, whatever the first gives.
func (s *Server) operatorOK(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || len(s.dashUser) == 0 || len(s.dashPass) == 0 {
		return false
	}
	userOK := s.dashUser.match(user)
	passOK := s.dashPass.match(pass)
	return userOK && passOK
}

// corsPolicy is who may call /api/* from a browser.
type corsPolicy struct {
	any     bool
	origins map[string]bool
}

// Headers a browser client may send and read.
const (
	corsAllowHeaders  = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
	corsAllowMethods  = "GET, HEAD, POST, DELETE"
	corsExposeHeaders = "Location, Retry-After, WWW-Authenticate"
	corsMaxAge        = "600"
)

func newCORSPolicy(list []string) (corsPolicy, error) {
	p := corsPolicy{origins: map[string]bool{}}
	var errs []error
	for _, o := range list {
		o = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
		switch {
		case o == "":
		case o == "*":
			p.any = true
		case validOrigin(o):
			p.origins[o] = true
		default:
			errs = append(errs, fmt.Errorf("CORS origin %q is not an origin: write scheme://host[:port], like https://app.example.com, or *", o))
		}
	}
	if p.any && len(p.origins) > 0 {
		errs = append(errs, errors.New("CORS origin * allows every origin; give it alone, or list origins without it"))
	}
	return p, errors.Join(errs...)
}

func validOrigin(o string) bool {
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

func (p corsPolicy) on() bool { return p.any || len(p.origins) > 0 }

// cors adds CORS headers to the answers of /api/* for allowed origins, and
// answers their preflight requests itself (a browser sends no token with a
// preflight, so it must not reach the token check).
func (s *Server) cors(next http.Handler) http.Handler {
	if !s.corsPolicy.on() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		allowed := s.corsPolicy.any || s.corsPolicy.origins[strings.ToLower(origin)]
		switch {
		case preflight && !allowed:
			s.writeError(w, r, &Error{Code: CodeForbidden, Message: "this origin is not in API_CORS_ORIGINS"})
			return
		case !allowed:
			next.ServeHTTP(w, r) // without CORS headers the browser keeps the answer from the page
			return
		}
		if s.corsPolicy.any {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		next.ServeHTTP(w, r)
	})
}
