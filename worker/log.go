package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/keyq/keyq/internal/redisconn"
)

// asynqLogger sends asynq's messages to slog. Its connection errors go to
// DEBUG: while Redis is away asynq repeats them every second, and keyq's
// Redis watcher (internal/redisconn) reports the outage once instead.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...), "src", "asynq") }
func (l asynqLogger) Info(args ...any)  { l.at(slog.LevelInfo, args) }
func (l asynqLogger) Warn(args ...any)  { l.at(slog.LevelWarn, args) }
func (l asynqLogger) Error(args ...any) { l.at(slog.LevelError, args) }

func (l asynqLogger) at(level slog.Level, args []any) {
	msg := fmt.Sprint(args...)
	if redisconn.Noise(msg) {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, msg, "src", "asynq")
}

// Fatal is what asynq calls when it cannot go on; like log.Fatal, it exits.
func (l asynqLogger) Fatal(args ...any) {
	l.log.Error(fmt.Sprint(args...), "src", "asynq")
	os.Exit(1)
}
