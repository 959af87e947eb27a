package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keyq/keyq/metrics"
)

// watchMembership compares this worker's keys with the fleet's every
// interval. A worker whose key list differs (a rolling reload of the key
// file, a host with an old secret) only ever uses the keys it holds, and no
// job fails for it; it says so once, in one clear line, and in the metrics
// keyq_worker_keys_differ. Comparing also announces the worker's keys
// again when Redis lost them (for every model's pool).
func (w *Worker) watchMembership(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := ""
	for {
		last = w.checkMembership(ctx, last)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkMembership logs a change of this worker's standing in the fleet;
// last is what it said the time before, and it returns what it says now.
func (w *Worker) checkMembership(ctx context.Context, last string) string {
	h := w.handler
	ring := h.chain[0].Ring // every model's pool holds the same keys
	for _, mo := range h.Models()[1:] {
		_, _ = mo.Ring.Membership(ctx) // re-announces the pool if Redis forgot it
	}
	m, err := ring.Membership(ctx)
	if err != nil {
		if ctx.Err() == nil {
			h.log.Debug("could not compare this worker's keys with the fleet's", "err", err)
		}
		return last
	}
	pool := ring.Pool()
	metrics.SetKeySetDiff(pool, len(m.Missing), len(m.Extra))
	if !m.Differs() {
		if last != "" {
			h.log.Info(fmt.Sprintf("this worker's %d keys are the fleet's again", m.Held))
		}
		return ""
	}
	now := fmt.Sprintf("this worker's keys differ from the fleet's (%d replicas, %d key sets): it lacks %d of the fleet's %d keys%s and holds %d the fleet lacks%s; "+
		"it only ever uses its own keys, and the rotation stays even over the keys each worker holds. Give every worker the same key list.",
		m.Replicas, m.Sets, len(m.Missing), m.Fleet, fps(m.Missing), len(m.Extra), fps(m.Extra))
	if now != last {
		h.log.Warn(now, "pool", pool)
	}
	return now
}

// fps lists up to 5 fingerprints for a log line.
func fps(list []string) string {
	if len(list) == 0 {
		return ""
	}
	if len(list) > 5 {
		return " (" + strings.Join(list[:5], ", ") + ", ...)"
	}
	return " (" + strings.Join(list, ", ") + ")"
}
