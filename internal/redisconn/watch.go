package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watch intervals: how often Redis is pinged, and how often an outage is
// reported again while it lasts.
const (
	watchEvery  = time.Second
	remindEvery = time.Minute
)

// Watcher says once, clearly, when Redis cannot be reached, reminds at
// most once a minute while it stays away, and says when it is back; the
// raw connection errors of go-redis and asynq are then kept at DEBUG
// (Noise), so an outage is a few lines, not a flood.
type Watcher struct {
	rdb  redis.UniversalClient
	name string
	log  *slog.Logger
	down atomic.Bool
}

// NewWatcher watches rdb, named name (Describe) in its lines.
func NewWatcher(rdb redis.UniversalClient, name string, log *slog.Logger) *Watcher {
	return &Watcher{rdb: rdb, name: name, log: log}
}

// Down reports whether the last ping failed.
func (w *Watcher) Down() bool { return w.down.Load() }

// Check pings once and logs a change of state. It returns the ping's error.
func (w *Watcher) Check(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := w.rdb.Ping(pctx).Err()
	if err != nil && ctx.Err() == nil && !w.down.Swap(true) {
		w.log.Warn(fmt.Sprintf("cannot reach Redis at %s (%v); retrying", w.name, err))
	}
	if err == nil && w.down.Swap(false) {
		w.log.Info(fmt.Sprintf("Redis at %s is back", w.name))
	}
	return err
}

// Run checks every second until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	var since, reminded time.Time
	for {
		if err := w.Check(ctx); err != nil && ctx.Err() == nil {
			now := time.Now()
			if since.IsZero() {
				since, reminded = now, now
			} else if now.Sub(reminded) >= remindEvery {
				reminded = now
				w.log.Warn(fmt.Sprintf("still cannot reach Redis at %s after %s (%v); retrying", w.name, now.Sub(since).Round(time.Second), err))
			}
		} else {
			since = time.Time{}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Noise reports whether a library's log message is a connection error that
// a Watcher already reports: such lines belong at DEBUG.
func Noise(msg string) bool {
	for _, s := range []string{"dial tcp", "connection refused", "i/o timeout", "connection reset", "broken pipe",
		"EOF", "context deadline exceeded", "use of closed network connection", "no route to host", "LOADING"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// QuietLibraryLogs routes go-redis's own log lines (pool dial failures and
// the like) to log at DEBUG.
func QuietLibraryLogs(log *slog.Logger) { redis.SetLogger(libLogger{log}) }

type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "src", "go-redis")
}
