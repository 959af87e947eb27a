package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keyq/keyq/internal/redact"
	"github.com/keyq/keyq/keyring"
)

// keyFileCheck is how often GEMINI_API_KEY_FILE is looked at for changes
// (a mounted Kubernetes secret changes without an event we could wait on).
const keyFileCheck = 5 * time.Second

// loadKeys reads the key list from GEMINI_API_KEY or GEMINI_API_KEY_FILE,
// warning of dropped duplicates without naming them.
func loadKeys(g GeminiEnv, log *slog.Logger) ([]keyring.Key, []byte, error) {
	list, source := []byte(g.APIKey), "GEMINI_API_KEY"
	if g.APIKeyFile != "" {
		b, err := os.ReadFile(g.APIKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("GEMINI_API_KEY_FILE: %w", err)
		}
		list, source = b, "GEMINI_API_KEY_FILE"
	}
	// A file may hold one key a line as well as commas.
	keys, dropped, err := keyring.ParseKeys(string(bytes.ReplaceAll(list, []byte("\n"), []byte(","))))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", source, err)
	}
	for _, pos := range dropped {
		log.Warn(fmt.Sprintf("%s: dropped the duplicate key at position %d", source, pos))
	}
	sum := sha256.Sum256(list)
	return keys, sum[:], nil
}

// notifyHUP starts catching SIGHUP, before anything announces that the
// worker is up, so that an early signal reloads rather than kills it.
func notifyHUP() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// watchKeyFile re-reads GEMINI_API_KEY_FILE on SIGHUP and when its content
// changes, and swaps the ring's keys without a restart. A bad file is logged
// and the keys in use stay.
func watchKeyFile(ctx context.Context, g GeminiEnv, ring interface {
	Keys() []keyring.Key
	SetKeys(context.Context, []keyring.Key) error
}, scrub *redact.Pool, sum []byte, hup chan os.Signal, log *slog.Logger) {
	defer signal.Stop(hup)
	tick := time.NewTicker(keyFileCheck)
	defer tick.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-hup:
			forced = true
		case <-tick.C:
		}
		keys, newSum, err := loadKeys(g, log)
		if err != nil {
			if forced {
				log.Error("key reload failed; keeping the keys in use", "err", err)
			}
			continue
		}
		if !forced && bytes.Equal(newSum, sum) {
			continue
		}
		// Old keys stay redacted too: a line about a call made before
		// the reload may still be written.
		scrub.Set(append(secrets(keys), secrets(ring.Keys())...))
		if err := ring.SetKeys(ctx, keys); err != nil {
			log.Error("key reload failed; keeping the keys in use", "err", err)
			continue
		}
		sum = newSum
		log.Info(fmt.Sprintf("Reloaded %d Gemini API keys for load balancing", len(keys)), "keys", keys)
	}
}
