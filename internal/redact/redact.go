// Package redact removes API keys from text that leaves the process: not
// only a key quoted whole, but any run of MinRun or more of its characters,
// whichever key of the pool it comes from (an upstream may echo the first
// 20 characters of the calling key, or another key altogether).
package redact

import (
	"context"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync/atomic"
)

// MinRun is the shortest run of a key's characters that is redacted.
// Shorter runs are too likely to be ordinary words.
const MinRun = 12

// Mark replaces what was redacted.
const Mark = "[redacted]"

// Pool redacts the runs of a set of secrets. The zero value redacts
// nothing; Set may be called at any time (a key file reload), concurrently
// with String. Memory: one 8-byte hash per MinRun-window of each secret.
type Pool struct {
	idx atomic.Pointer[index]
}

type index struct {
	seed    maphash.Seed
	windows map[uint64]struct{}
}

// Set replaces the secrets. Secrets shorter than MinRun are ignored.
func (p *Pool) Set(secrets []string) {
	ix := &index{seed: maphash.MakeSeed(), windows: make(map[uint64]struct{})}
	for _, s := range secrets {
		for i := 0; i+MinRun <= len(s); i++ {
			ix.windows[maphash.String(ix.seed, s[i:i+MinRun])] = struct{}{}
		}
	}
	p.idx.Store(ix)
}

// String returns s with every run of MinRun or more characters of any
// secret replaced by Mark.
func (p *Pool) String(s string) string {
	ix := p.idx.Load()
	if ix == nil || len(ix.windows) == 0 || len(s) < MinRun {
		return s
	}
	var b strings.Builder
	last := 0     // s[:last] is written
	coverTo := -1 // end of the current redacted run
	start := 0
	for i := 0; i+MinRun <= len(s); i++ {
		if _, hit := ix.windows[maphash.String(ix.seed, s[i:i+MinRun])]; !hit {
			continue
		}
		if i > coverTo { // a new run starts
			if coverTo >= 0 {
				b.WriteString(s[last:start])
				b.WriteString(Mark)
				last = coverTo
			}
			start = i
		}
		coverTo = i + MinRun
	}
	if coverTo < 0 {
		return s
	}
	b.WriteString(s[last:start])
	b.WriteString(Mark)
	b.WriteString(s[coverTo:])
	return b.String()
}

// Handler wraps a slog.Handler so that the message and every string or
// error attribute of each record pass through the pool first.
func (p *Pool) Handler(next slog.Handler) slog.Handler { return &handler{next: next, p: p} }

type handler struct {
	next slog.Handler
	p    *Pool
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.p.String(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = h.attr(a)
	}
	return &handler{next: h.next.WithAttrs(clean), p: h.p}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), p: h.p}
}

func (h *handler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.p.String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = h.attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.p.String(err.Error()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
