package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyq/keyq/gemini"
)

// DefaultProbeInterval is how often a worker looks for disabled keys whose
// probe is due.
const DefaultProbeInterval = 30 * time.Second

// probeLoop brings back keys disabled on suspicion: every interval it claims
// the probes that are due (one replica gets each) and asks Gemini about the
// key with a call that spends no generation quota. A good answer enables the
// key; a bad one leaves it disabled until its next, later, probe.
func (h *Handler) probeLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.probeDue(ctx)
		}
	}
}

func (h *Handler) probeDue(ctx context.Context) {
	for _, m := range h.Models() {
		h.probeModel(ctx, m)
	}
}

// probeModel probes the due keys of one model's pool, with that model.
func (h *Handler) probeModel(ctx context.Context, m Model) {
	due, err := m.Ring.DueProbes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("could not look for key probes", "err", err)
		}
		return
	}
	for _, key := range due {
		err := m.Client.Probe(ctx, key.Secret())
		var ge *gemini.Error
		switch {
		case err == nil:
			if err := m.Ring.Enable(ctx, key.Fingerprint); err != nil {
				h.log.Warn("could not enable a key after a good probe", "key", key, "err", err)
				continue
			}
			h.log.Info(fmt.Sprintf("[Gemini] API Key %s is back: probe succeeded", key.Name()), "key", key)
		case errors.As(err, &ge):
			h.log.Warn(fmt.Sprintf("[Gemini] API Key %s still refused (probe: %s)", key.Name(), reasonOf(ge)), "key", key)
		default:
			h.log.Warn("key probe failed", "key", key, "err", err)
		}
	}
}
