package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Server-Sent Events of a job (GET /api/jobs/{id}/events): one event per
// change of state until the job is final, each with the job's JSON as its
// data and the job's event sequence number as its id, so that a client
// that reconnects with Last-Event-ID gets only what it did not see.
const (
	sseRetry     = 2 * time.Second  // told to clients: wait before reconnecting
	sseMaxStream = 15 * time.Minute // a stream ends then; the client reconnects
)

// sse writes events to one client.
type sse struct {
	w    http.ResponseWriter
	f    http.Flusher
	last int64 // the id of the last event the client has
}

func (e *sse) send(seq int64, j Job) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "id: %d\nevent: %s\ndata: %s\n\n", seq, j.Status, b); err != nil {
		return err
	}
	e.f.Flush()
	e.last = seq
	return nil
}

func (e *sse) comment(text string) error {
	if _, err := fmt.Fprintf(e.w, ": %s\n\n", text); err != nil {
		return err
	}
	e.f.Flush()
	return nil
}

// lastEventID reads Last-Event-ID: -1 when absent or unreadable (the
// client gets the current state).
func lastEventID(r *http.Request) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(r.Header.Get("Last-Event-ID")), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (s *Server) getJobEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := jobIDOf(r)
	if err != nil {
		return err
	}
	f, ok := w.(http.Flusher)
	if !ok {
		return fmt.Errorf("events: the response cannot be flushed")
	}
	ctx, cancel := context.WithTimeout(r.Context(), sseMaxStream)
	defer cancel()
	wt, err := s.cl.hub.watch(ctx, id)
	if err != nil {
		return err
	}
	defer s.cl.hub.forget(wt)
	j, seq, err := s.readJob(ctx, r, id) // errors are still JSON answers
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	e := &sse{w: w, f: f, last: lastEventID(r)}
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", sseRetry.Milliseconds()); err != nil {
		return nil
	}
	if seq > e.last || e.last < 0 {
		if e.send(seq, j) != nil {
			return nil
		}
	}
	if !j.Status.Final() {
		s.streamEvents(ctx, r, e, wt, id)
	}
	return nil
}

// streamEvents sends the job's events until it is final, the client goes
// or the stream's time is up. Every fallback it re-reads the job (an event
// may have been lost) and otherwise sends a comment, which keeps proxies
// from closing an idle stream.
func (s *Server) streamEvents(ctx context.Context, r *http.Request, e *sse, wt *waiter, id string) {
	again := time.NewTicker(s.cl.fallback)
	defer again.Stop()
	for {
		select {
		case ev := <-wt.ch:
			var j Job
			if ev.Seq <= e.last || json.Unmarshal(ev.Job, &j) != nil {
				continue
			}
			if e.send(ev.Seq, j) != nil || j.Status.Final() {
				return
			}
		case <-again.C:
			j, seq, err := s.readJob(ctx, r, id)
			switch {
			case err != nil:
				_ = e.comment("the job could not be read: " + errorCode(err))
				return
			case seq > e.last || j.Status.Final():
				if e.send(max(seq, e.last), j) != nil || j.Status.Final() {
					return
				}
			default:
				if e.comment("waiting") != nil {
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// errorCode names an error for an event stream, whose status is sent.
func errorCode(err error) string {
	if isNotFound(err) {
		return CodeNotFound
	}
	return CodeUnavailable
}
