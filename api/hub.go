package api

import (
	"context"
	"log/slog"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/keyq/keyq/internal/jobstore"
)

// hub wakes the API's waiters (GET ?wait=, GET .../events) when a job
// changes state. It holds ONE pub/sub connection per process, on the one
// events channel, opened on the first waiter, and fans each message out to
// the waiters of its job: a thousand waiters cost a thousand map entries,
// not a thousand connections. Every API replica subscribes itself, so a
// state published by any worker wakes waiters on every replica. go-redis
// reconnects and subscribes again after a lost connection; messages sent
// meanwhile are lost, which the waiters' slow re-read (fallbackEvery)
// makes up for.
type hub struct {
	rdb redis.UniversalClient
	log *slog.Logger

	mu     sync.Mutex
	ps     *redis.PubSub
	subs   map[string]map[*waiter]struct{}
	closed bool
}

// waiter receives the events of one job. Its channel keeps the latest few;
// when it is full, events are dropped and the waiter's re-read catches up.
type waiter struct {
	id string
	ch chan jobstore.Event
}

func newHub(rdb redis.UniversalClient, log *slog.Logger) *hub {
	return &hub{rdb: rdb, log: log, subs: map[string]map[*waiter]struct{}{}}
}

// watch registers a waiter for job id, subscribing the process first if it
// is not yet. Register before reading the job: an event published after
// the read then reaches the waiter.
func (h *hub) watch(ctx context.Context, id string) (*waiter, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ps == nil && !h.closed {
		ctx, cancel := context.WithTimeout(ctx, redisTimeout)
		defer cancel()
		ps := h.rdb.Subscribe(ctx, jobstore.EventsChannel)
		if _, err := ps.Receive(ctx); err != nil { // the subscription is confirmed
			_ = ps.Close()
			return nil, redisErr(err)
		}
		h.ps = ps
		go h.fanOut(ps.Channel())
	}
	w := &waiter{id: id, ch: make(chan jobstore.Event, 4)}
	if h.subs[id] == nil {
		h.subs[id] = map[*waiter]struct{}{}
	}
	h.subs[id][w] = struct{}{}
	return w, nil
}

// forget unregisters a waiter.
func (h *hub) forget(w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[w.id], w)
	if len(h.subs[w.id]) == 0 {
		delete(h.subs, w.id)
	}
}

func (h *hub) fanOut(msgs <-chan *redis.Message) {
	for m := range msgs {
		ev, err := jobstore.ParseEvent(m.Payload)
		if err != nil {
			h.log.Warn("ignored a malformed job event", "err", err)
			continue
		}
		h.mu.Lock()
		for w := range h.subs[ev.ID] {
			select {
			case w.ch <- ev:
			default: // full: the waiter re-reads
			}
		}
		h.mu.Unlock()
	}
}

// count is how many waiters are registered (tests, metrics).
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, ws := range h.subs {
		n += len(ws)
	}
	return n
}

// close ends the subscription.
func (h *hub) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.ps == nil {
		return nil
	}
	err := h.ps.Close()
	h.ps = nil
	return err
}
