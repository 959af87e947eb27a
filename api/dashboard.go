package api

import (
	"fmt"
	"net/http"

	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// Dashboard configures the operator pages: asynqmon at /monitoring/ and
// the key table at /keys, both behind HTTP basic auth. The zero value
// serves neither.
type Dashboard struct {
	// Password turns the pages on. Empty: no /monitoring/, no /keys.
	Password string
	// User is the basic-auth user name. Default "admin".
	User string
	// Writable lets the dashboard change things (pause queues, delete,
	// run and archive tasks). Default false: read-only.
	Writable bool
}

// DashboardPath is where asynqmon is mounted.
const DashboardPath = "/monitoring"

// newDashboard mounts asynqmon on its own connections to rdb's Redis
// (asynqmon closes them in Close). asynqmon has no authentication of its
// own; the route table puts it behind the operator check.
func newDashboard(rdb redis.UniversalClient, d Dashboard) (*asynqmon.HTTPHandler, error) {
	var opt connOpt
	// Fresh options with the connection's settings: a copy of a client's
	// Options would share state go-redis fills in at NewClient.
	switch c := rdb.(type) {
	case *redis.Client:
		o := c.Options()
		opt = func() any {
			return redis.NewClient(&redis.Options{
				Network: o.Network, Addr: o.Addr, Dialer: o.Dialer, TLSConfig: o.TLSConfig,
				Username: o.Username, Password: o.Password, CredentialsProvider: o.CredentialsProvider, DB: o.DB,
				DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
				PoolSize: 4,
			})
		}
	case *redis.ClusterClient:
		o := c.Options()
		opt = func() any {
			return redis.NewClusterClient(&redis.ClusterOptions{
				Addrs: o.Addrs, NewClient: o.NewClient, Dialer: o.Dialer, TLSConfig: o.TLSConfig,
				Username: o.Username, Password: o.Password, CredentialsProvider: o.CredentialsProvider,
				DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
				PoolSize: 4,
			})
		}
	default:
		return nil, fmt.Errorf("api: the dashboard needs a *redis.Client or *redis.ClusterClient, not %T", rdb)
	}
	return asynqmon.New(asynqmon.Options{
		RootPath:     DashboardPath,
		RedisConnOpt: opt,
		ReadOnly:     !d.Writable,
	}), nil
}

// connOpt makes a new Redis client each time asynqmon asks for one.
type connOpt func() any

func (f connOpt) MakeRedisClient() any { return f() }

// dashboardHandler serves asynqmon. Read-only, it refuses every method but
// GET and HEAD before asynqmon sees the request: asynqmon's own ReadOnly
// guards only its JSON API routes, and this way a route it adds later, or
// misses, cannot write either.
func (s *Server) dashboardHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.dashWritable && r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.writeError(w, r, &Error{Code: CodeMethodNotAllowed,
				Message: "the dashboard is read-only; set DASHBOARD_READONLY=false on keyq api to allow changes"})
			return
		}
		s.dashboard.ServeHTTP(w, r)
	})
}
