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

	"github.com/keyq/keyq/gemini/geminifake"
	"github.com/keyq/keyq/tasks"
)

// SimEnv shapes the simulated Gemini of keyq dev and keyq fake.
type SimEnv struct {
	SimLatency       time.Duration `envconfig:"SIM_LATENCY" desc:"simulated Gemini: time to answer"`
	SimFailureRate   float64       `envconfig:"SIM_FAILURE_RATE" desc:"simulated Gemini: share of calls answered 503 (Google's body)"`
	SimRateLimitRate float64       `envconfig:"SIM_429_RATE" desc:"simulated Gemini: share of calls answered 429 per-minute (Google's body; cools the key's project)"`
}

func defaultSimEnv() SimEnv { return SimEnv{SimLatency: 2 * time.Second, SimFailureRate: 0.2} }

func (s SimEnv) validate() error {
	if s.SimLatency < 0 || s.SimFailureRate < 0 || s.SimRateLimitRate < 0 || s.SimFailureRate+s.SimRateLimitRate > 1 {
		return errors.New("SIM_LATENCY must not be negative, and SIM_FAILURE_RATE and SIM_429_RATE must be within 0..1 together")
	}
	return nil
}

// fakeConfig is keyq fake: the simulator alone, on a fixed address, for
// workers in other processes (the compose demo profile).
type fakeConfig struct {
	Addr string `envconfig:"FAKE_ADDR" desc:"where the fake Gemini listens; point workers' GEMINI_BASE_URL at it"`
	SimEnv
	LogEnv
}

func newFakeConfig() command {
	s := defaultSimEnv()
	s.SimRateLimitRate = 0.05
	return &fakeConfig{Addr: ":8090", SimEnv: s, LogEnv: defaultLogEnv()}
}

func (c *fakeConfig) validate() error {
	var addr error
	if c.Addr == "" {
		addr = errors.New("FAKE_ADDR must not be empty (like :8090)")
	}
	return joinErrs(addr, c.SimEnv.validate(), c.LogEnv.validate())
}

func (c *fakeConfig) run(ctx context.Context, log *slog.Logger) error {
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return configError{fmt.Errorf("FAKE_ADDR %s: %w", c.Addr, err)}
	}
	log.Warn(fmt.Sprintf("!!! keyq fake: a SIMULATED Gemini on %s (%.0f%% 503s, %.0f%% 429s, %s per call); any key is accepted. Never point production workers here.",
		ln.Addr(), c.SimFailureRate*100, c.SimRateLimitRate*100, c.SimLatency), "addr", ln.Addr().String())
	return serveFake(ctx, ln, c.SimEnv, log)
}

// serveFake serves the simulator on ln until ctx ends.
func serveFake(ctx context.Context, ln net.Listener, s SimEnv, log *slog.Logger) error {
	up := geminifake.New(geminifake.Simulated(geminifake.Simulation{
		Latency: s.SimLatency, FailureRate: s.SimFailureRate, RateLimitRate: s.SimRateLimitRate, Text: simulatedAnalysis}))
	hs := &http.Server{Handler: up, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("simulated Gemini stopped", "err", err)
		return err
	}
	return nil
}

var promptName = regexp.MustCompile(`<name>(.*?)</name>`)

// simulatedAnalysis answers with a plausible analysis of the character
// named in the prompt.
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
		Summary:       fmt.Sprintf("%s is a character simulated by keyq: no model was called.", name),
		Traits:        []string{"curious", "resilient", "simulated"},
		Archetype:     "explorer",
		Motivations:   []string{"to be analyzed by a real model"},
		SpeakingStyle: "plain",
		Tags:          []string{"simulated"},
	})
	return string(b)
}
