package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/metrics"
	"github.com/keyq/keyq/tasks"
)

// simulatedKeys stand in for real keys when GEMINI_API_KEY is unset.
const simulatedKeys = "sim-key-1,sim-key-2,sim-key-3"

// runDev runs the API and a worker in one process, substituting what is not
// configured: an embedded Redis for REDIS_URL, a simulated Gemini for
// GEMINI_API_KEY. Each substitution is announced loudly.
func runDev(ctx context.Context, cfg devConfig, log *slog.Logger) error {
	var rdb *redis.Client
	if cfg.RedisURL == "" {
		m, err := startMiniredis(ctx)
		if err != nil {
			return err
		}
		defer m.Close()
		log.Warn("!!! REDIS_URL is unset: using an EMBEDDED IN-MEMORY Redis (miniredis). Jobs vanish when keyq stops. Set REDIS_URL for a real Redis.")
		rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
	} else {
		var err error
		if rdb, err = openRedis(cfg.RedisURL); err != nil {
			return err
		}
	}
	defer rdb.Close()

	if cfg.APIKey == "" && cfg.APIKeyFile == "" {
		base, stop, err := startSimulator(cfg)
		if err != nil {
			return err
		}
		defer stop()
		log.Warn(fmt.Sprintf("!!! GEMINI_API_KEY is unset: answering with a SIMULATED Gemini at %s (%d%% of calls answer 503, %s per call). Set GEMINI_API_KEY to call Google.",
			base, int(cfg.SimFailureRate*100), cfg.SimLatency))
		cfg.APIKey, cfg.BaseURL = simulatedKeys, base
	}

	w, err := newWorker(ctx, rdb, cfg.GeminiEnv, cfg.WorkerEnv, log)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Shutdown()
	// The worker's metrics join the API's on /metrics: one process, one
	// scrape (keyq dev has no WORKER_METRICS_ADDR).
	ops := apiOps{APIAuthEnv: cfg.APIAuthEnv, DashboardEnv: cfg.DashboardEnv, collectors: metrics.WorkerCollectors()}
	return serveAPI(ctx, rdb, cfg.Model, cfg.APIEnv, cfg.JobEnv, ops, log)
}

// startMiniredis starts the embedded Redis and moves its clock forward from
// a ticker, so that TTLs expire; ClockTTL would scan every key on every
// command (see shared asynq notes).
func startMiniredis(ctx context.Context) (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded Redis: %w", err)
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return m, nil
}

// startSimulator serves a fake Gemini on a loopback port. It answers with a
// plausible analysis of the character named in the prompt, or now and then
// with Google's real 503 body, so failover shows in the logs.
func startSimulator(cfg devConfig) (baseURL string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("start simulated Gemini: %w", err)
	}
	up := geminifake.New(geminifake.Simulated(cfg.SimFailureRate, cfg.SimLatency, simulatedAnalysis))
	hs := &http.Server{Handler: up, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("simulated Gemini stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { _ = hs.Close() }, nil
}

var promptName = regexp.MustCompile(`<name>(.*?)</name>`)

func simulatedAnalysis(req []byte) string {
	var body struct {
		Contents []struct {
			Parts []struct{ Text string } `json:"parts"`
		} `json:"contents"`
	}
	name := "this character"
	if json.Unmarshal(req, &body) == nil && len(body.Contents) > 0 && len(body.Contents[0].Parts) > 0 {
		if m := promptName.FindStringSubmatch(body.Contents[0].Parts[0].Text); m != nil {
			name = m[1]
		}
	}
	b, _ := json.Marshal(tasks.CharacterAnalysis{
		Summary:       fmt.Sprintf("%s is a character simulated by keyq dev: no model was called.", name),
		Traits:        []string{"curious", "resilient", "simulated"},
		Archetype:     "explorer",
		Motivations:   []string{"to be analyzed by a real model"},
		SpeakingStyle: "plain",
		Tags:          []string{"simulated"},
	})
	return string(b)
}
